//! Each worker's pool of idle upstream connections, shared by all the client connections of the
//! worker's thread.
//!
//! A connection is in the pool only between two requests: a request takes one (or connects) and
//! its answer's end hands it back. So the router holds about as many upstream connections as it
//! has requests in flight, plus the idle ones, whatever the number of clients; the idle ones are
//! bounded per endpoint and closed after [`DEFAULT_IDLE_TIMEOUT`]. The most recently used goes out
//! first (a stack), so a steady load keeps few connections warm and the rest expire.
//!
//! The lock is the worker's own (only its thread takes it): never contended.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::fd_limit::is_fd_limit;
use super::table::CompiledTable;
use super::upstream::{self, CONNECT_TIMEOUT, Upstream, UpstreamError};
use super::{Shared, lock};

/// An idle upstream connection unused for this long is closed. Below the 5 s keep-alive timeout of
/// Node.js, a common server default, so that the router usually closes first; a server that closes
/// first costs no request either (see `send`), only a new connection.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Idle connections a worker keeps per endpoint (the oldest goes beyond it). Closed-loop clients
/// hand their connections back in bursts: a cap below the requests in flight closed connections
/// that the next burst had to open again (about one connect per two requests with 400 in flight
/// and a cap of 64). The idle timeout, not this cap, is what returns them after a peak.
pub(super) const MAX_IDLE_PER_ENDPOINT: usize = 4096;
/// Longest pause between two connect attempts at the open-file limit.
const MAX_PAUSE: Duration = Duration::from_millis(50);
/// How long the entry points stop accepting after a connect found no descriptor.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// An upstream connection for one request.
pub(super) struct Checkout {
    pub(super) upstream: Upstream,
    /// It carried earlier requests (so the upstream may have closed it meanwhile).
    pub(super) reused: bool,
}

pub(super) struct Pool {
    state: Mutex<State>,
    idle_timeout: Duration,
    /// Wakes the reaper when the pool gets its first idle connection.
    wake: Notify,
}

#[derive(Default)]
struct State {
    /// Per endpoint, the oldest first. A few endpoints: a scan beats hashing.
    stacks: Vec<(SocketAddr, VecDeque<Idle>)>,
    /// The table generation the endpoints were last checked against.
    generation: u64,
}

struct Idle {
    upstream: Upstream,
    since: Instant,
}

impl State {
    fn stack(&mut self, addr: SocketAddr) -> Option<&mut VecDeque<Idle>> {
        self.stacks
            .iter_mut()
            .find(|(a, _)| *a == addr)
            .map(|(_, stack)| stack)
    }

    fn is_empty(&self) -> bool {
        self.stacks.iter().all(|(_, stack)| stack.is_empty())
    }

    /// Closes the idle connections to endpoints that left the table.
    fn follow(&mut self, table: &CompiledTable) {
        if self.generation != table.generation {
            self.stacks.retain(|(addr, _)| table.routes_to(*addr));
            self.generation = table.generation;
        }
    }
}

impl Pool {
    pub(super) fn new(idle_timeout: Duration) -> Self {
        Pool {
            state: Mutex::new(State::default()),
            idle_timeout,
            wake: Notify::new(),
        }
    }

    /// The most recently used idle connection to `addr` that can take a request now.
    pub(super) fn take(&self, addr: SocketAddr) -> Option<Upstream> {
        let mut state = lock(&self.state);
        let stack = state.stack(addr)?;
        while let Some(idle) = stack.pop_back() {
            // Not ready: closed by the upstream (its connection task saw the end), or, rarely, its
            // connection task has not yet noticed the answer's end. Either way not for this one.
            if idle.upstream.sender.is_ready() {
                return Some(idle.upstream);
            }
        }
        None
    }

    /// A connection to `addr` for one request: an idle one, else a new one.
    pub(super) async fn checkout(
        &self,
        addr: SocketAddr,
        shared: &Shared,
    ) -> Result<Checkout, UpstreamError> {
        match self.take(addr) {
            Some(upstream) => Ok(Checkout {
                upstream,
                reused: true,
            }),
            None => self.connect(addr, shared).await,
        }
    }

    /// A new connection to `addr`. At the open-file limit it takes an idle one to `addr` that came
    /// back meanwhile, or closes an idle one to another endpoint to make room, or stops the
    /// accepting for a moment, waits a little and tries again, up to [`CONNECT_TIMEOUT`]: the
    /// request waits rather than fails.
    pub(super) async fn connect(
        &self,
        addr: SocketAddr,
        shared: &Shared,
    ) -> Result<Checkout, UpstreamError> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let mut pause = Duration::from_millis(1);
        loop {
            let err = match upstream::connect(addr).await {
                Ok(upstream) => {
                    return Ok(Checkout {
                        upstream,
                        reused: false,
                    });
                }
                Err(UpstreamError::Connect(err)) if is_fd_limit(&err) => err,
                Err(err) => return Err(err),
            };
            shared.connect_failures.record(&err);
            shared.accept_gate.close_for(ACCEPT_PAUSE);
            let now = Instant::now();
            if now >= deadline {
                return Err(UpstreamError::Connect(err));
            }
            if let Some(upstream) = self.take(addr) {
                return Ok(Checkout {
                    upstream,
                    reused: true,
                });
            }
            if self.close_oldest() {
                // Its connection task closes the socket when it next runs.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// Closes the idle connection unused for longest, if any.
    fn close_oldest(&self) -> bool {
        let mut state = lock(&self.state);
        let oldest = state
            .stacks
            .iter_mut()
            .filter_map(|(_, stack)| Some((stack.front()?.since, stack)))
            .min_by_key(|(since, _)| *since);
        match oldest {
            Some((_, stack)) => stack.pop_front().is_some(),
            None => false,
        }
    }

    /// Keeps `upstream`, whose answer has ended, for the next request to its endpoint. `table`
    /// is the current one: connections to endpoints that left it are closed instead.
    pub(super) fn put(&self, upstream: Upstream, table: &CompiledTable) {
        if upstream.sender.is_closed() {
            return;
        }
        let since = Instant::now();
        let was_empty = {
            let mut state = lock(&self.state);
            state.follow(table);
            let was_empty = state.is_empty();
            let addr = upstream.addr;
            let stack = match state.stacks.iter().position(|(a, _)| *a == addr) {
                Some(index) => &mut state.stacks[index].1,
                None => {
                    state.stacks.push((addr, VecDeque::new()));
                    &mut state.stacks.last_mut().expect("just pushed").1
                }
            };
            if stack.len() >= MAX_IDLE_PER_ENDPOINT {
                stack.pop_front();
            }
            stack.push_back(Idle { upstream, since });
            was_empty
        };
        if was_empty {
            self.wake.notify_one();
        }
    }

    /// Closes the connections idle for the idle timeout, those closed by their upstream, and
    /// those to endpoints that left `table`. Returns when the next one will have been idle long
    /// enough, if any is left.
    fn sweep(&self, now: Instant, table: &CompiledTable) -> Option<Instant> {
        let mut state = lock(&self.state);
        state.follow(table);
        let mut next: Option<Instant> = None;
        for (_, stack) in &mut state.stacks {
            stack.retain(|idle| {
                idle.since + self.idle_timeout > now && !idle.upstream.sender.is_closed()
            });
            if let Some(oldest) = stack.front() {
                let expiry = oldest.since + self.idle_timeout;
                next = Some(next.map_or(expiry, |n| n.min(expiry)));
            }
        }
        next
    }

    /// The worker's reaper: sweeps when an idle connection expires and when the table changes;
    /// sleeps while the pool is empty.
    pub(super) async fn reap(&self, shared: &Shared) {
        let mut changes = shared.changes.subscribe();
        loop {
            let next = self.sweep(Instant::now(), &shared.table.load());
            let expiry = tokio::time::sleep_until(
                next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
                    .into(),
            );
            tokio::select! {
                changed = changes.changed() => if changed.is_err() {
                    // The router is gone.
                    return;
                },
                () = expiry, if next.is_some() => {}
                () = self.wake.notified(), if next.is_none() => {}
            }
        }
    }
}

//! Shadow traffic: a copy of a share of a rule's requests goes to the mirror's endpoints, and
//! their answers are discarded.
//!
//! The client never waits for a copy and never sees it: the request handler only puts the copy
//! in its worker's queue (`try_send`: a full queue drops the copy and counts it), and a task of
//! the worker sends the copies, at most [`MirrorOptions::in_flight`] at a time, each within
//! [`MirrorOptions::timeout`]. So a shadow that hangs fills the queue, not the client's path, and
//! the upstream connections copies hold are bounded by the copies in flight. Copies take idle
//! connections from the worker's pool and give them back like requests do, but never wait for a
//! descriptor: at the open-file limit a copy fails (counted), the clients' requests go first.
//!
//! The copies of a mirror that a new table replaced or removed are abandoned: queued ones are not
//! sent and those in flight are cut, so a shadow that hung does not hold back the next mirror
//! (their counters went with their mirror).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use tokio::sync::{Semaphore, mpsc};

use super::mirror_stats::{Failure, MirrorCounters, MirrorStats};
use super::proxy::keeps_alive;
use super::send::is_idempotent;
use super::upstream::{self, Upstream, UpstreamError};
use super::{Shared, WorkerState};
use crate::{Matcher, Mirror};

/// How the builtin router sends copies (per worker).
#[derive(Clone, Copy, Debug)]
pub struct MirrorOptions {
    /// Copies waiting to be sent; one more is dropped (and counted).
    pub queue: usize,
    /// Copies being sent at once.
    pub in_flight: usize,
    /// The largest request body a copy carries; a request with a larger one is not copied
    /// (counted).
    pub max_body: usize,
    /// How long a copy may take, from connecting to its answer's last byte.
    pub timeout: Duration,
}

impl Default for MirrorOptions {
    fn default() -> Self {
        MirrorOptions {
            queue: 256,
            in_flight: 32,
            max_body: 64 * 1024,
            timeout: Duration::from_secs(5),
        }
    }
}

/// A rule's mirror, prepared for the hot path.
pub(super) struct CompiledMirror {
    name: String,
    percent: u64,
    /// What the counters belong to: a table whose mirror has the same name, percent and rule
    /// matcher keeps them (new endpoints do not reset them).
    identity: (String, u32, Matcher),
    targets: Vec<SocketAddr>,
    next: AtomicU64,
    requests: AtomicU64,
    pub(super) counters: Arc<MirrorCounters>,
}

impl CompiledMirror {
    /// `previous`: the mirrors of the table in force, whose counters this one keeps if it is the
    /// same mirror.
    pub(super) fn compile<'a>(
        mirror: &Mirror,
        matcher: &Matcher,
        mut previous: impl Iterator<Item = &'a CompiledMirror>,
    ) -> CompiledMirror {
        let identity = (mirror.name.clone(), mirror.percent, matcher.clone());
        let counters = previous.find(|old| old.identity == identity).map_or_else(
            || Arc::new(MirrorCounters::new()),
            |old| old.counters.clone(),
        );
        CompiledMirror {
            name: mirror.name.clone(),
            percent: u64::from(mirror.percent.min(100)),
            identity,
            targets: mirror.endpoints.iter().map(|e| e.addr).collect(),
            next: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            counters,
        }
    }

    /// Whether this request is copied. The same Weyl sequence as the weights: evenly spread, so
    /// over 1,000 requests the share is within a request or two of `percent`.
    pub(super) fn takes(&self) -> bool {
        match self.percent {
            0 => false,
            100 => true,
            percent => {
                let n = self.requests.fetch_add(1, Ordering::Relaxed);
                let fraction = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                ((u128::from(fraction) * 100) >> 64) < u128::from(percent)
            }
        }
    }

    fn pick(&self) -> Option<SocketAddr> {
        if self.targets.is_empty() {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len() as u64;
        self.targets.get(index as usize).copied()
    }

    pub(super) fn stats(&self) -> MirrorStats {
        self.counters.snapshot(&self.name)
    }
}

/// A request to copy: its head as it went upstream, and its whole body.
pub(super) struct Copy {
    pub(super) mirror: Arc<CompiledMirror>,
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl Copy {
    fn request(&self) -> Request<upstream::RequestBody> {
        let mut request = Request::new(Either::Right(Full::new(self.body.clone())));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// The worker's queue of copies, and its limits.
pub(super) struct MirrorQueue {
    sender: mpsc::Sender<Copy>,
    pub(super) options: MirrorOptions,
}

impl MirrorQueue {
    /// The queue, and its end for [`send_copies`].
    pub(super) fn new(options: MirrorOptions) -> (MirrorQueue, mpsc::Receiver<Copy>) {
        let (sender, receiver) = mpsc::channel(options.queue.max(1));
        (MirrorQueue { sender, options }, receiver)
    }

    /// Queues `copy`, or drops it (counted) when the queue is full.
    pub(super) fn enqueue(&self, copy: Copy) {
        if let Err(mpsc::error::TrySendError::Full(copy)) = self.sender.try_send(copy) {
            copy.mirror.counters.dropped();
        }
    }
}

/// The worker's task that sends the queued copies, at most `in_flight` at a time.
pub(super) async fn send_copies(worker: Arc<WorkerState>, mut copies: mpsc::Receiver<Copy>) {
    let options = worker.mirror.options;
    let in_flight = Arc::new(Semaphore::new(options.in_flight.max(1)));
    loop {
        // A permit first: while every slot is taken, copies wait in the (bounded) queue.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(copy) = copies.recv().await else {
            return;
        };
        let worker = worker.clone();
        tokio::spawn(async move {
            deliver(&worker, copy, options.timeout).await;
            drop(permit);
        });
    }
}

async fn deliver(worker: &WorkerState, copy: Copy, timeout: Duration) {
    let counters = copy.mirror.counters.clone();
    let mut changes = worker.shared.changes.subscribe();
    if !in_force(&worker.shared, &counters) {
        return;
    }
    counters.sent();
    let Some(addr) = copy.mirror.pick() else {
        counters.failed(Failure::NoEndpoint);
        return;
    };
    let started = Instant::now();
    let exchange = tokio::time::timeout(timeout, exchange(worker, addr, &copy));
    // Dropping the exchange (timed out, or its mirror gone) closes its connection.
    let retired =
        async { while changes.changed().await.is_ok() && in_force(&worker.shared, &counters) {} };
    tokio::select! {
        outcome = exchange => match outcome {
            Ok(Ok(status)) => counters.answered(status, started.elapsed()),
            Ok(Err(err)) => {
                tracing::debug!(%addr, "mirror copy failed: {err}");
                counters.failed(Failure::of(&err));
            }
            Err(_) => counters.failed(Failure::Timeout),
        },
        () = retired => {}
    }
}

/// Whether the table in force still has the mirror these counters belong to.
fn in_force(shared: &Shared, counters: &Arc<MirrorCounters>) -> bool {
    shared
        .table
        .load()
        .mirrors()
        .any(|mirror| Arc::ptr_eq(&mirror.counters, counters))
}

/// Sends the copy, reads its answer to the end (discarding it) and gives the connection back.
async fn exchange(
    worker: &WorkerState,
    addr: SocketAddr,
    copy: &Copy,
) -> Result<StatusCode, UpstreamError> {
    let (upstream, response) = send_copy(worker, addr, copy).await?;
    let keep = keeps_alive(&response);
    let status = response.status();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame?;
    }
    let table = worker.shared.table.load();
    if keep && table.routes_to(addr) {
        worker.pool.put(upstream, &table);
    }
    Ok(status)
}

/// On an idle pooled connection, else a new one. As for requests (see `send.rs`), a copy goes
/// again on a new connection when a reused one turned out closed before it left, or before any
/// answer came back for one that may be repeated.
async fn send_copy(
    worker: &WorkerState,
    addr: SocketAddr,
    copy: &Copy,
) -> Result<(Upstream, Response<Incoming>), UpstreamError> {
    if let Some(mut upstream) = worker.pool.take(addr) {
        let read = upstream.bytes_read();
        match upstream.sender.try_send_request(copy.request()).await {
            Ok(response) => return Ok((upstream, response)),
            Err(mut err) => {
                let unsent = err.take_message().is_some();
                let repeatable = is_idempotent(&copy.method) && upstream.bytes_read() == read;
                if !unsent && !repeatable {
                    return Err(err.into_error().into());
                }
            }
        }
    }
    let mut upstream = upstream::connect(addr).await?;
    let response = upstream.sender.send_request(copy.request()).await?;
    Ok((upstream, response))
}

//! zdd's own router: an HTTP/1.1 reverse proxy on loopback, kube-proxy's and the ingress's part.
//!
//! Hot path:
//! - each worker is an OS thread with a current-thread tokio runtime: a request never crosses
//!   threads, so no cross-thread wake-up (futex) is paid for it; several workers share the ports
//!   with `SO_REUSEPORT` (thread per core);
//! - the route table sits behind an [`ArcSwap`] (a lock-free load per request); backends and
//!   endpoints are picked with atomic counters, per request;
//! - upstream connections come from the worker's pool, shared by all its client connections and
//!   taken by a lock only its thread uses; so the router holds about as many as it has requests in
//!   flight, whatever the number of clients (see `pool.rs`);
//! - the `Host` fallback and the `X-Zdd-*` header values are prepared when the table is applied,
//!   and so are the rules' matchers (header names parsed, regexes compiled);
//! - a request a mirror copies costs the client a copy of its head and references to its body's
//!   chunks; the copy is sent by a task of the worker, through a bounded queue (see `mirror.rs`);
//! - after a request a worker keeps polling its sockets for [`BUSY_POLL`] instead of sleeping at
//!   once: waking a thread that sleeps costs tens of microseconds on a virtual machine, more than
//!   the proxying itself (HAProxy's `busy-polling`, bounded here to the moments after traffic).
//!
//! No retries: a refused upstream is a 502, no endpoint a 503 (kube-proxy and Traefik do not
//! retry either, so the failures a rollout causes stay visible). The one exception is a reused
//! upstream connection that the upstream closed as the request went out on it: a request that
//! got no byte of an answer goes again on a new connection if it may (see `send.rs`).
//!
//! At the open-file limit the router slows down instead of failing or spinning: accepting backs
//! off, a request waits for a descriptor, and one warning a second says how many failed.

mod body;
mod busy_poll;
mod copy_body;
mod fd_limit;
mod matcher;
mod mirror;
mod mirror_stats;
mod pool;
mod proxy;
mod send;
mod table;
mod upstream;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::{RouteTable, RouterAddrs, RouterError};
use busy_poll::BusyPoll;
use fd_limit::{AcceptGate, Throttled};
use mirror::{Copy, MirrorQueue, send_copies};
use pool::Pool;
use proxy::{ClientConnection, serve_client};
use table::{CompiledTable, EntryPoint, compile};

pub use busy_poll::BUSY_POLL;
pub use mirror::MirrorOptions;
pub use mirror_stats::MirrorStats;
pub use pool::DEFAULT_IDLE_TIMEOUT;
pub use table::{NODE_HEADER, POD_HEADER, VERSION_HEADER};

/// One `write` of a copied buffer instead of a `writev` of the head and the body: cheaper for
/// small messages, which is what a proxy mostly moves.
const WRITEV: bool = false;
/// Listen backlog of each entry point.
const BACKLOG: u32 = 1024;
/// Longest pause of an entry point whose accepts fail (at the open-file limit, mostly): the
/// clients wait in the backlog meanwhile.
const MAX_ACCEPT_PAUSE: Duration = Duration::from_millis(100);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data are plain collections of connections: usable after a panic elsewhere.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What every worker shares.
struct Shared {
    table: ArcSwap<CompiledTable>,
    /// The table's generation, bumped by each apply (wakes the pools' reapers).
    changes: watch::Sender<u64>,
    accept_failures: Throttled,
    connect_failures: Throttled,
    accept_gate: AcceptGate,
}

/// What the tasks of one worker thread share.
struct WorkerState {
    /// A clone per worker: requests clone the worker's `Arc`, whose count only its thread touches.
    shared: Arc<Shared>,
    pool: Pool,
    busy: BusyPoll,
    mirror: MirrorQueue,
}

/// How a [`BuiltinRouter`] runs.
#[derive(Clone, Copy, Debug)]
pub struct BuiltinOptions {
    /// Worker threads (at least 1), each with its own listeners on the same ports
    /// (`SO_REUSEPORT`: the kernel spreads the connections) and its own upstream pool.
    pub threads: usize,
    /// An idle upstream connection unused for this long is closed.
    pub upstream_idle_timeout: Duration,
    /// How copies for mirrors are sent.
    pub mirror: MirrorOptions,
}

impl Default for BuiltinOptions {
    fn default() -> Self {
        BuiltinOptions {
            threads: 1,
            upstream_idle_timeout: DEFAULT_IDLE_TIMEOUT,
            mirror: MirrorOptions::default(),
        }
    }
}

/// A worker thread: its runtime's end closes its listeners and connections.
struct Worker {
    done: oneshot::Receiver<()>,
    thread: std::thread::JoinHandle<()>,
}

/// The running builtin router.
pub struct BuiltinRouter {
    shared: Arc<Shared>,
    addrs: RouterAddrs,
    stop: CancellationToken,
    workers: Vec<Worker>,
}

impl BuiltinRouter {
    /// Binds the main entry point on `listen` and the preview one on an OS-picked port of the
    /// same loopback address, and starts serving on one worker thread (503 until the first
    /// [`BuiltinRouter::apply`]).
    pub async fn start(listen: SocketAddr) -> Result<BuiltinRouter, RouterError> {
        Self::start_with_threads(listen, 1).await
    }

    /// [`BuiltinRouter::start`] with `threads` workers (at least 1), each with its own listeners
    /// on the same ports (`SO_REUSEPORT`: the kernel spreads the connections).
    pub async fn start_with_threads(
        listen: SocketAddr,
        threads: usize,
    ) -> Result<BuiltinRouter, RouterError> {
        Self::start_with_options(
            listen,
            BuiltinOptions {
                threads,
                ..BuiltinOptions::default()
            },
        )
        .await
    }

    /// [`BuiltinRouter::start`] with `options`.
    pub async fn start_with_options(
        listen: SocketAddr,
        options: BuiltinOptions,
    ) -> Result<BuiltinRouter, RouterError> {
        let threads = options.threads.max(1);
        let shared = Arc::new(Shared {
            table: ArcSwap::from_pointee(compile(&RouteTable::default(), 0, None)),
            changes: watch::Sender::new(0),
            accept_failures: Throttled::new("accept"),
            connect_failures: Throttled::new("connect to an upstream"),
            accept_gate: AcceptGate::new(),
        });
        let stop = CancellationToken::new();
        let mut router = BuiltinRouter {
            shared,
            addrs: RouterAddrs {
                main: listen,
                preview: SocketAddr::new(listen.ip(), 0),
            },
            stop,
            workers: Vec::with_capacity(threads),
        };
        // The first worker binds (picking the ports when asked to), the others join its ports.
        for index in 0..threads {
            let (bound, addrs) = oneshot::channel();
            let (done_tx, done) = oneshot::channel();
            let shared = router.shared.clone();
            let stop = router.stop.clone();
            let wanted = router.addrs;
            let thread = std::thread::Builder::new()
                .name(format!("zdd-router-{index}"))
                .spawn(move || {
                    let (mirror, copies) = MirrorQueue::new(options.mirror);
                    let worker = WorkerState {
                        shared: shared.clone(),
                        pool: Pool::new(options.upstream_idle_timeout),
                        busy: BusyPoll::default(),
                        mirror,
                    };
                    run_worker(wanted, threads > 1, shared, worker, copies, stop, bound);
                    let _ = done_tx.send(());
                })?;
            router.workers.push(Worker { done, thread });
            router.addrs = addrs
                .await
                .map_err(|_| RouterError::Other("router worker ended at start".into()))??;
        }
        Ok(router)
    }

    pub fn addrs(&self) -> RouterAddrs {
        self.addrs
    }

    /// Takes effect for the next request (requests in flight finish where they were sent). A
    /// mirror that stays the same (name, percent, rule matcher) keeps its counters.
    pub fn apply(&self, table: &RouteTable) {
        // Under the watch's lock: tables applied at once from several threads keep their order.
        self.shared.changes.send_modify(|generation| {
            *generation += 1;
            let previous = self.shared.table.load();
            let compiled = compile(table, *generation, Some(&previous));
            self.shared.table.store(Arc::new(compiled));
        });
    }

    /// The counters of each mirror of the table in force, since that mirror was set.
    pub fn mirror_stats(&self) -> Vec<MirrorStats> {
        self.shared.table.load().mirror_stats()
    }

    /// Closes the listeners and every client and upstream connection.
    pub async fn shutdown(&mut self) {
        self.stop.cancel();
        for worker in self.workers.drain(..) {
            let _ = worker.done.await;
            let _ = worker.thread.join();
        }
    }
}

impl Drop for BuiltinRouter {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// One worker's whole life: binds `wanted` (reports the bound addresses through `bound`), then
/// serves both entry points until `stop`.
fn run_worker(
    wanted: RouterAddrs,
    reuse_port: bool,
    shared: Arc<Shared>,
    worker: WorkerState,
    copies: tokio::sync::mpsc::Receiver<Copy>,
    stop: CancellationToken,
    bound: oneshot::Sender<io::Result<RouterAddrs>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = bound.send(Err(err));
            return;
        }
    };
    runtime.block_on(async move {
        let listeners = (|| {
            let main = bind(wanted.main, reuse_port)?;
            let preview = bind(wanted.preview, reuse_port)?;
            let addrs = RouterAddrs {
                main: main.local_addr()?,
                preview: preview.local_addr()?,
            };
            io::Result::Ok((main, preview, addrs))
        })();
        let (main, preview) = match listeners {
            Ok((main, preview, addrs)) => {
                let _ = bound.send(Ok(addrs));
                (main, preview)
            }
            Err(err) => {
                let _ = bound.send(Err(err));
                return;
            }
        };
        let worker = Arc::new(worker);
        let busy_poll = {
            let worker = worker.clone();
            tokio::spawn(async move { worker.busy.run().await })
        };
        let reaper = {
            let worker = worker.clone();
            tokio::spawn(async move { worker.pool.reap(&worker.shared).await })
        };
        let mirror = tokio::spawn(send_copies(worker.clone(), copies));
        tokio::join!(
            serve(main, EntryPoint::Main, &shared, &worker, &stop),
            serve(preview, EntryPoint::Preview, &shared, &worker, &stop),
        );
        busy_poll.abort();
        reaper.abort();
        mirror.abort();
    });
    // Dropping the runtime drops every connection task: the sockets close.
    drop(runtime);
}

async fn serve(
    listener: TcpListener,
    entry: EntryPoint,
    shared: &Arc<Shared>,
    worker: &Arc<WorkerState>,
    stop: &CancellationToken,
) {
    let mut pause = Duration::ZERO;
    loop {
        if let Some(closed) = shared.accept_gate.closed_for() {
            tokio::select! {
                _ = stop.cancelled() => break,
                () = tokio::time::sleep(closed) => {}
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    pause = Duration::ZERO;
                    let _ = stream.set_nodelay(true);
                    let client = Arc::new(ClientConnection::new(entry, worker.clone()));
                    tokio::spawn(serve_client(stream, client));
                }
                Err(err) => {
                    // Out of file descriptors and the like: the listener stays readable (the
                    // connection waits in the backlog), so trying again at once would spin. Back
                    // off, longer while it lasts; connections that end meanwhile free descriptors.
                    shared.accept_failures.record(&err);
                    pause = (pause * 2).clamp(Duration::from_millis(1), MAX_ACCEPT_PAUSE);
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            },
        }
    }
}

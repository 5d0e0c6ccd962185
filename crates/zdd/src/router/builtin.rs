//! zdd's own router: an HTTP/1.1 reverse proxy on loopback, kube-proxy's and the ingress's part.
//!
//! Hot path:
//! - each worker is an OS thread with a current-thread tokio runtime: a request never crosses
//!   threads, so no cross-thread wake-up (futex) is paid for it; several workers share the ports
//!   with `SO_REUSEPORT` (thread per core);
//! - the route table sits behind an [`ArcSwap`] (a lock-free load per request); backends and
//!   endpoints are picked with atomic counters, per request;
//! - each client connection keeps the upstream connections it used (one per endpoint, a few at
//!   most) and reuses the one to the endpoint just picked: no pool lock, no pool checkout. Only a
//!   connection's first request to an endpoint goes to the worker's shared pool (or connects);
//! - the `Host` fallback and the `X-Zdd-*` header values are prepared when the table is applied;
//! - after a request a worker keeps polling its sockets for [`BUSY_POLL`] instead of sleeping at
//!   once: waking a thread that sleeps costs tens of microseconds on a virtual machine, more than
//!   the proxying itself (HAProxy's `busy-polling`, bounded here to the moments after traffic).
//!
//! No retries: a refused upstream is a 502, no endpoint a 503 (kube-proxy and Traefik do not
//! retry either, so the failures a rollout causes stay visible). The one exception is a reused
//! idle upstream connection that turns out closed before the request went out on it (the
//! upstream closed it meanwhile): that request was never sent, so it goes on a new connection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1 as client_http1;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use super::{Matcher, Route, RouteTable, RouterAddrs, RouterError};

pub const VERSION_HEADER: HeaderName = HeaderName::from_static("x-zdd-version");
pub const POD_HEADER: HeaderName = HeaderName::from_static("x-zdd-pod");

/// Headers that describe one connection, not the message: never forwarded (RFC 9110 7.6.1).
/// Forwarding a draining upstream's `Connection: close` would needlessly close the client's
/// connection to the router too.
const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::UPGRADE,
];

/// A replica that does not accept within this is unreachable: 502.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Upstream connections a client connection keeps for itself (one per endpoint it talks to):
/// enough for round robin over a few replicas without touching the shared pool.
const CONNECTION_CACHE: usize = 4;
/// Idle upstream connections a worker keeps per endpoint for new client connections.
const POOL_PER_ENDPOINT: usize = 64;
/// One `write` of a copied buffer instead of a `writev` of the head and the body: cheaper for
/// small messages, which is what a proxy mostly moves.
const WRITEV: bool = false;
/// How long a worker keeps polling its sockets after its last request before it sleeps. An
/// answer from a replica or a keep-alive client's next request usually comes sooner, and is then
/// seen without a wake-up; with no traffic, no CPU is spent.
pub const BUSY_POLL: Duration = Duration::from_micros(200);
/// Listen backlog of each entry point.
const BACKLOG: u32 = 1024;

type ProxyBody = Either<Incoming, Full<Bytes>>;

/// An endpoint, prepared for the hot path.
struct Target {
    addr: SocketAddr,
    /// `Host` for a request that came without one (HTTP/1.0).
    host: HeaderValue,
    version: HeaderValue,
    pod: HeaderValue,
}

struct CompiledBackend {
    weight: u64,
    targets: Vec<Arc<Target>>,
    next: AtomicU64,
}

enum CompiledMatcher {
    Always,
    Header(HeaderName, HeaderValue),
}

struct CompiledRule {
    matcher: CompiledMatcher,
    backends: Vec<CompiledBackend>,
    total_weight: u64,
    requests: AtomicU64,
}

struct CompiledRoute {
    rules: Vec<CompiledRule>,
}

struct CompiledTable {
    main: CompiledRoute,
    preview: CompiledRoute,
}

#[derive(Clone, Copy, Debug)]
enum EntryPoint {
    Main,
    Preview,
}

impl CompiledMatcher {
    fn matches(&self, headers: &HeaderMap) -> bool {
        match self {
            CompiledMatcher::Always => true,
            CompiledMatcher::Header(name, value) => headers.get(name) == Some(value),
        }
    }
}

impl CompiledRule {
    /// The weighted choice follows a Weyl sequence over the request count: deterministic, lock-free
    /// and evenly spread (90/10 interleaves instead of sending 90 in a row to one side).
    fn pick(&self) -> Option<&Arc<Target>> {
        if self.total_weight == 0 {
            return None;
        }
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let fraction = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut slot = ((u128::from(fraction) * u128::from(self.total_weight)) >> 64) as u64;
        let backend = self.backends.iter().find(|backend| {
            if slot < backend.weight {
                return true;
            }
            slot -= backend.weight;
            false
        })?;
        if backend.targets.is_empty() {
            return None;
        }
        let index = backend.next.fetch_add(1, Ordering::Relaxed) % backend.targets.len() as u64;
        backend.targets.get(index as usize)
    }
}

impl CompiledRoute {
    /// The endpoint for a request; or 404 when no rule takes it (like an ingress without a
    /// matching rule), 503 when its rule has no endpoint for it.
    fn pick(&self, headers: &HeaderMap) -> Result<Arc<Target>, (StatusCode, &'static str)> {
        let rule = self
            .rules
            .iter()
            .find(|rule| rule.matcher.matches(headers))
            .ok_or((StatusCode::NOT_FOUND, "no route\n"))?;
        rule.pick().cloned().ok_or((
            StatusCode::SERVICE_UNAVAILABLE,
            "no ready endpoint for this route\n",
        ))
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn compile_route(route: &Route) -> CompiledRoute {
    let rules = route
        .rules
        .iter()
        .map(|rule| {
            let matcher = match &rule.matcher {
                Matcher::Always => CompiledMatcher::Always,
                Matcher::Header { name, value } => match HeaderName::try_from(name.as_str()) {
                    Ok(name) => CompiledMatcher::Header(name, header_value(value)),
                    // A header name no request can carry matches nothing.
                    Err(_) => CompiledMatcher::Header(VERSION_HEADER, header_value("\u{1}")),
                },
            };
            let backends: Vec<CompiledBackend> = rule
                .backends
                .iter()
                .map(|backend| CompiledBackend {
                    weight: u64::from(backend.weight),
                    targets: backend
                        .endpoints
                        .iter()
                        .map(|endpoint| {
                            Arc::new(Target {
                                addr: endpoint.addr,
                                host: header_value(&endpoint.addr.to_string()),
                                version: header_value(&endpoint.version),
                                pod: header_value(&endpoint.pod),
                            })
                        })
                        .collect(),
                    next: AtomicU64::new(0),
                })
                .collect();
            CompiledRule {
                matcher,
                total_weight: backends.iter().map(|b| b.weight).sum(),
                backends,
                requests: AtomicU64::new(0),
            }
        })
        .collect();
    CompiledRoute { rules }
}

fn compile(table: &RouteTable) -> CompiledTable {
    CompiledTable {
        main: compile_route(&table.main),
        preview: compile_route(&table.preview),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data are plain collections of connections: usable after a panic elsewhere.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What every worker shares.
struct Shared {
    table: ArcSwap<CompiledTable>,
}

/// An open HTTP/1.1 connection to an endpoint.
struct Upstream {
    addr: SocketAddr,
    sender: client_http1::SendRequest<Incoming>,
}

#[derive(Debug, thiserror::Error)]
enum UpstreamError {
    #[error("connect: {0}")]
    Connect(io::Error),
    #[error("connect: no answer within {CONNECT_TIMEOUT:?}")]
    ConnectTimeout,
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

async fn connect(addr: SocketAddr) -> Result<Upstream, UpstreamError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| UpstreamError::ConnectTimeout)?
        .map_err(UpstreamError::Connect)?;
    stream.set_nodelay(true).map_err(UpstreamError::Connect)?;
    let (sender, connection) = client_http1::Builder::new()
        .writev(WRITEV)
        .handshake(TokioIo::new(stream))
        .await?;
    // Ends when the upstream closes the connection or every sender is dropped.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Upstream { addr, sender })
}

/// A worker's idle upstream connections, for client connections that have none to an endpoint.
#[derive(Default)]
struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<client_http1::SendRequest<Incoming>>>>,
}

impl Pool {
    fn take(&self, addr: SocketAddr) -> Option<Upstream> {
        let mut idle = lock(&self.idle);
        let senders = idle.get_mut(&addr)?;
        while let Some(sender) = senders.pop() {
            if sender.is_ready() {
                return Some(Upstream { addr, sender });
            }
        }
        None
    }

    fn put(&self, upstream: Upstream) {
        if !upstream.sender.is_ready() {
            return;
        }
        let mut idle = lock(&self.idle);
        let senders = idle.entry(upstream.addr).or_default();
        senders.retain(|sender| !sender.is_closed());
        if senders.len() < POOL_PER_ENDPOINT {
            senders.push(upstream.sender);
        }
    }
}

/// What the tasks of one worker thread share.
#[derive(Default)]
struct WorkerState {
    pool: Pool,
    busy: BusyPoll,
}

/// The worker's busy polling: a task that keeps yielding (so the runtime polls the sockets
/// without sleeping) until no request came for [`BUSY_POLL`], then sleeps until the next one.
#[derive(Default)]
struct BusyPoll {
    /// Requests seen by this worker. Only its own thread writes it: a plain load and store.
    requests: AtomicU64,
    idle: AtomicBool,
    wake: Notify,
}

impl BusyPoll {
    fn request_seen(&self) {
        let seen = self.requests.load(Ordering::Relaxed);
        self.requests.store(seen.wrapping_add(1), Ordering::Relaxed);
        if self.idle.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    async fn run(&self) {
        loop {
            self.idle.store(true, Ordering::Relaxed);
            // A request that came before this wait left a permit: no wake-up is lost.
            self.wake.notified().await;
            self.idle.store(false, Ordering::Relaxed);
            let mut seen = self.requests.load(Ordering::Relaxed);
            let mut last = Instant::now();
            while last.elapsed() < BUSY_POLL {
                // Yielding lets the runtime poll the sockets (without blocking) and run what
                // became ready, then come back here.
                tokio::task::yield_now().await;
                let now_seen = self.requests.load(Ordering::Relaxed);
                if now_seen != seen {
                    seen = now_seen;
                    last = Instant::now();
                }
            }
        }
    }
}

/// One client connection's own upstream connections; its requests come one after the other.
struct ClientConnection {
    entry: EntryPoint,
    shared: Arc<Shared>,
    worker: Arc<WorkerState>,
    upstreams: Mutex<Vec<Upstream>>,
}

impl ClientConnection {
    /// An upstream connection to `addr` ready for a request: this connection's own, else the
    /// pool's; `None` = connect.
    async fn checkout(&self, addr: SocketAddr) -> Option<Upstream> {
        let own = {
            let mut upstreams = lock(&self.upstreams);
            let index = upstreams.iter().position(|upstream| upstream.addr == addr);
            index.map(|index| upstreams.swap_remove(index))
        };
        if let Some(mut upstream) = own {
            // Ready at once, unless the previous answer's end is still being read.
            if upstream.sender.ready().await.is_ok() {
                return Some(upstream);
            }
        }
        self.worker.pool.take(addr)
    }

    fn checkin(&self, upstream: Upstream) {
        let evicted = {
            let mut upstreams = lock(&self.upstreams);
            upstreams.push(upstream);
            (upstreams.len() > CONNECTION_CACHE).then(|| upstreams.remove(0))
        };
        if let Some(upstream) = evicted {
            self.worker.pool.put(upstream);
        }
    }

    /// The client went away: its upstream connections serve other clients.
    fn release(&self) {
        for upstream in lock(&self.upstreams).drain(..) {
            self.worker.pool.put(upstream);
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
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            table: ArcSwap::from_pointee(compile(&RouteTable::default())),
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
                    run_worker(wanted, threads > 1, shared, stop, bound);
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

    /// Takes effect for the next request (requests in flight finish where they were sent).
    pub fn apply(&self, table: &RouteTable) {
        self.shared.table.store(Arc::new(compile(table)));
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
        let worker = Arc::new(WorkerState::default());
        let busy_poll = {
            let worker = worker.clone();
            tokio::spawn(async move { worker.busy.run().await })
        };
        tokio::join!(
            serve(main, EntryPoint::Main, &shared, &worker, &stop),
            serve(preview, EntryPoint::Preview, &shared, &worker, &stop),
        );
        busy_poll.abort();
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
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let client = Arc::new(ClientConnection {
                        entry,
                        shared: shared.clone(),
                        worker: worker.clone(),
                        upstreams: Mutex::new(Vec::new()),
                    });
                    tokio::spawn(serve_client(stream, client));
                }
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("router accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn serve_client(stream: TcpStream, client: Arc<ClientConnection>) {
    let service = {
        let client = client.clone();
        service_fn(move |request| proxy(client.clone(), request))
    };
    let _ = http1::Builder::new()
        .writev(WRITEV)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    client.release();
}

fn plain(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        text.as_bytes(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // The headers `Connection` names are hop-by-hop too (RFC 9110, 7.6.1). Most messages have no
    // `Connection` header or only `keep-alive`/`close` in it: no allocation for those.
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|token| {
                !token.eq_ignore_ascii_case("keep-alive") && !token.eq_ignore_ascii_case("close")
            })
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Whether the upstream keeps the connection open after this answer.
fn keeps_alive(response: &Response<Incoming>) -> bool {
    let has_token = |token: &str| {
        response
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    };
    match response.version() {
        Version::HTTP_11 => !has_token("close"),
        Version::HTTP_10 => has_token("keep-alive"),
        _ => false,
    }
}

/// Sends `request` on a reused connection to `addr`, or on a new one; a reused connection that
/// the upstream closed before the request went out gets the request again on a new one.
async fn send(
    client: &ClientConnection,
    addr: SocketAddr,
    request: Request<Incoming>,
) -> Result<(Upstream, Response<Incoming>), UpstreamError> {
    if let Some(mut upstream) = client.checkout(addr).await {
        match upstream.sender.try_send_request(request).await {
            Ok(response) => return Ok((upstream, response)),
            Err(mut err) => match err.take_message() {
                Some(unsent) => {
                    let mut upstream = connect(addr).await?;
                    let response = upstream.sender.send_request(unsent).await?;
                    return Ok((upstream, response));
                }
                None => return Err(err.into_error().into()),
            },
        }
    }
    let mut upstream = connect(addr).await?;
    let response = upstream.sender.send_request(request).await?;
    Ok((upstream, response))
}

async fn proxy(
    client: Arc<ClientConnection>,
    mut request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    client.worker.busy.request_seen();
    let target = {
        let table = client.shared.table.load();
        let route = match client.entry {
            EntryPoint::Main => &table.main,
            EntryPoint::Preview => &table.preview,
        };
        route.pick(request.headers())
    };
    let target = match target {
        Ok(target) => target,
        Err((status, text)) => return Ok(plain(status, text)),
    };
    strip_hop_by_hop(request.headers_mut());
    // The router speaks HTTP/1.1 to upstreams, whatever the client spoke.
    *request.version_mut() = Version::HTTP_11;
    if !request.headers().contains_key(header::HOST) {
        request
            .headers_mut()
            .insert(header::HOST, target.host.clone());
    }
    let mut response = match send(&client, target.addr, request).await {
        Ok((upstream, response)) => {
            if keeps_alive(&response) {
                client.checkin(upstream);
            }
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            // A proxy answers in its own version (an HTTP/1.0 upstream must not make the
            // client's keep-alive connection look like a one-shot one).
            parts.version = Version::HTTP_11;
            Response::from_parts(parts, Either::Left(body))
        }
        Err(err) => {
            tracing::debug!(pod = ?target.pod, "upstream failed: {err}");
            plain(StatusCode::BAD_GATEWAY, "upstream failed\n")
        }
    };
    // Also on a 502: the probe can tell which version failed.
    let headers = response.headers_mut();
    headers.insert(VERSION_HEADER, target.version.clone());
    headers.insert(POD_HEADER, target.pod.clone());
    Ok(response)
}

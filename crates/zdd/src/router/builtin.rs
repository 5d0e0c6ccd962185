//! zdd's own router: an HTTP/1.1 reverse proxy on loopback, kube-proxy's and the ingress's part.
//!
//! Hot path: the route table sits behind an [`ArcSwap`] (a lock-free load per request), backends
//! and endpoints are picked with atomic counters, the upstream authority and the `X-Zdd-*` header
//! values are prepared when the table is applied, and upstream connections are pooled by hyper's
//! client. No retries: a refused upstream is a 502, no endpoint a 503 (kube-proxy and Traefik do
//! not retry either, so the failures a rollout causes stay visible).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme, Uri};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
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

type ProxyBody = Either<Incoming, Full<Bytes>>;

/// An endpoint, prepared for the hot path.
struct Target {
    authority: Authority,
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
                        .filter_map(|endpoint| {
                            Some(Arc::new(Target {
                                authority: Authority::try_from(endpoint.addr.to_string()).ok()?,
                                version: header_value(&endpoint.version),
                                pod: header_value(&endpoint.pod),
                            }))
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

struct Shared {
    table: ArcSwap<CompiledTable>,
    client: Client<HttpConnector, Incoming>,
}

/// The running builtin router.
pub struct BuiltinRouter {
    shared: Arc<Shared>,
    addrs: RouterAddrs,
    stop: CancellationToken,
    listeners: Vec<tokio::task::JoinHandle<()>>,
}

impl BuiltinRouter {
    /// Binds the main entry point on `listen` and the preview one on an OS-picked port of the
    /// same loopback address, and starts serving (503 until the first [`BuiltinRouter::apply`]).
    pub async fn start(listen: SocketAddr) -> Result<BuiltinRouter, RouterError> {
        let main = TcpListener::bind(listen).await?;
        let preview = TcpListener::bind(SocketAddr::new(listen.ip(), 0)).await?;
        let addrs = RouterAddrs {
            main: main.local_addr()?,
            preview: preview.local_addr()?,
        };
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let shared = Arc::new(Shared {
            table: ArcSwap::from_pointee(compile(&RouteTable::default())),
            client,
        });
        let stop = CancellationToken::new();
        let listeners = vec![
            tokio::spawn(serve(main, shared.clone(), EntryPoint::Main, stop.clone())),
            tokio::spawn(serve(
                preview,
                shared.clone(),
                EntryPoint::Preview,
                stop.clone(),
            )),
        ];
        Ok(BuiltinRouter {
            shared,
            addrs,
            stop,
            listeners,
        })
    }

    pub fn addrs(&self) -> RouterAddrs {
        self.addrs
    }

    /// Takes effect for the next request (requests in flight finish where they were sent).
    pub fn apply(&self, table: &RouteTable) {
        self.shared.table.store(Arc::new(compile(table)));
    }

    /// Closes the listeners and every client connection.
    pub async fn shutdown(&mut self) {
        self.stop.cancel();
        for listener in self.listeners.drain(..) {
            let _ = listener.await;
        }
    }
}

impl Drop for BuiltinRouter {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    entry: EntryPoint,
    stop: CancellationToken,
) {
    // Dropping the set when the loop ends aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |request| {
                            proxy(shared.clone(), entry, request)
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("router accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
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
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

async fn proxy(
    shared: Arc<Shared>,
    entry: EntryPoint,
    mut request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let target = {
        let table = shared.table.load();
        let route = match entry {
            EntryPoint::Main => &table.main,
            EntryPoint::Preview => &table.preview,
        };
        route.pick(request.headers())
    };
    let target = match target {
        Ok(target) => target,
        Err((status, text)) => return Ok(plain(status, text)),
    };
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(target.authority.clone());
    parts.path_and_query = request.uri().path_and_query().cloned();
    match Uri::from_parts(parts) {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => return Ok(plain(StatusCode::BAD_REQUEST, "bad request target\n")),
    }
    strip_hop_by_hop(request.headers_mut());
    let mut response = match shared.client.request(request).await {
        Ok(upstream) => {
            let (mut parts, body) = upstream.into_parts();
            strip_hop_by_hop(&mut parts.headers);
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

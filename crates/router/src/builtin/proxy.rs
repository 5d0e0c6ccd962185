//! One client connection: each request is matched against the table, forwarded to the endpoint
//! picked, and its answer returned with the `X-Zdd-*` headers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::table::{EntryPoint, NODE_HEADER, POD_HEADER, VERSION_HEADER};
use super::upstream::{Upstream, UpstreamError, connect};
use super::{Shared, WRITEV, WorkerState, lock};

/// Headers that describe one connection, not the message: never forwarded (RFC 9110 7.6.1).
/// Forwarding a draining upstream's `Connection: close` would needlessly close the client's
/// connection to the router too.
pub(super) const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::UPGRADE,
];
/// Upstream connections a client connection keeps for itself (one per endpoint it talks to):
/// enough for round robin over a few replicas without touching the shared pool.
pub(super) const CONNECTION_CACHE: usize = 4;

pub(super) type ProxyBody = Either<Incoming, Full<Bytes>>;

/// One client connection's own upstream connections; its requests come one after the other.
pub(super) struct ClientConnection {
    entry: EntryPoint,
    shared: Arc<Shared>,
    worker: Arc<WorkerState>,
    upstreams: Mutex<Vec<Upstream>>,
}

impl ClientConnection {
    pub(super) fn new(entry: EntryPoint, shared: Arc<Shared>, worker: Arc<WorkerState>) -> Self {
        ClientConnection {
            entry,
            shared,
            worker,
            upstreams: Mutex::new(Vec::new()),
        }
    }

    /// An upstream connection to `addr` ready for a request: this connection's own, else the
    /// pool's; `None` = connect.
    pub(super) async fn checkout(&self, addr: SocketAddr) -> Option<Upstream> {
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

    pub(super) fn checkin(&self, upstream: Upstream) {
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
    pub(super) fn release(&self) {
        for upstream in lock(&self.upstreams).drain(..) {
            self.worker.pool.put(upstream);
        }
    }
}

pub(super) async fn serve_client(stream: TcpStream, client: Arc<ClientConnection>) {
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

pub(super) fn plain(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
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

pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
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
pub(super) fn keeps_alive(response: &Response<Incoming>) -> bool {
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
pub(super) async fn send(
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

pub(super) async fn proxy(
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
    if let Some(node) = &target.node {
        headers.insert(NODE_HEADER, node.clone());
    }
    Ok(response)
}

//! One client connection: each request is matched against the table, forwarded to the endpoint
//! picked, and its answer returned with the `X-Zdd-*` headers.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::AnswerBody;
use super::copy_body::{BodyCopy, ClientBody};
use super::send::send;
use super::table::{EntryPoint, NODE_HEADER, POD_HEADER, VERSION_HEADER};
use super::{WRITEV, WorkerState};

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

pub(super) type ProxyBody = Either<AnswerBody, Full<Bytes>>;

/// One client connection. It keeps no upstream connection of its own: each request takes one
/// from the worker's pool and its answer's end gives it back.
pub(super) struct ClientConnection {
    entry: EntryPoint,
    worker: Arc<WorkerState>,
}

impl ClientConnection {
    pub(super) fn new(entry: EntryPoint, worker: Arc<WorkerState>) -> Self {
        ClientConnection { entry, worker }
    }
}

pub(super) async fn serve_client(stream: TcpStream, client: Arc<ClientConnection>) {
    let service = service_fn(move |request| proxy(client.clone(), request));
    let _ = http1::Builder::new()
        .writev(WRITEV)
        .serve_connection(TokioIo::new(stream), service)
        .await;
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

pub(super) async fn proxy(
    client: Arc<ClientConnection>,
    mut request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    client.worker.busy.request_seen();
    let (picked, generation) = {
        let table = client.worker.shared.table.load();
        let route = match client.entry {
            EntryPoint::Main => &table.main,
            EntryPoint::Preview => &table.preview,
        };
        (route.pick(request.headers()), table.generation)
    };
    let (target, mirror) = match picked {
        Ok(picked) => picked,
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
    // The copy is of the request as it goes upstream.
    let copy = mirror.and_then(|mirror| BodyCopy::start(&client.worker, mirror, &request));
    let request = request.map(|body| ClientBody::new(body, copy));
    let mut response = match send(&client.worker, target.addr, request).await {
        Ok((upstream, response)) => {
            let upstream = keeps_alive(&response).then_some(upstream);
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            // A proxy answers in its own version (an HTTP/1.0 upstream must not make the
            // client's keep-alive connection look like a one-shot one).
            parts.version = Version::HTTP_11;
            let body = AnswerBody::new(body, upstream, client.worker.clone(), generation);
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

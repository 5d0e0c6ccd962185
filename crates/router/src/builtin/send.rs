//! Sending a request upstream, and sending it once more when a reused connection turned out
//! closed.
//!
//! An upstream may close an idle keep-alive connection at any moment (its idle timeout, the end of
//! its drain), including just as the router sends a request on it. That request never reached the
//! application, so, as nginx and HAProxy do, it goes again on a new connection when:
//! - the connection was reused (a new connection that fails is the upstream's failure: 502);
//! - not one byte of an answer came back (counted on the socket: a partial answer may have had
//!   effects, and its bytes cannot be taken back from the client);
//! - the request is idempotent (RFC 9110 9.2.2) and has no body (a streamed body is gone).
//!
//! A request that never left (the connection was seen closed first) goes again whatever it is.

use std::net::SocketAddr;

use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::{Body, Incoming};

use super::WorkerState;
use super::copy_body::ClientBody;
use super::pool::Checkout;
use super::upstream::{RequestBody, Upstream, UpstreamError};

/// Sends `request` to `addr` on an idle pooled connection, or a new one.
pub(super) async fn send(
    worker: &WorkerState,
    addr: SocketAddr,
    request: Request<ClientBody>,
) -> Result<(Upstream, Response<Incoming>), UpstreamError> {
    let (pool, shared) = (&worker.pool, &*worker.shared);
    let Checkout {
        mut upstream,
        reused,
    } = pool.checkout(addr, shared).await?;
    let replay = if reused { Replay::of(&request) } else { None };
    let read = upstream.bytes_read();
    let again = match upstream
        .sender
        .try_send_request(request.map(Either::Left))
        .await
    {
        Ok(response) => return Ok((upstream, response)),
        Err(mut err) => match err.take_message() {
            Some(unsent) => unsent,
            None => match replay {
                Some(replay) if upstream.bytes_read() == read => {
                    tracing::debug!(%addr, "reused upstream connection closed: sending again");
                    replay.request()
                }
                _ => return Err(err.into_error().into()),
            },
        },
    };
    drop(upstream);
    // A new connection (at the open-file limit, maybe an idle one): at most one retry.
    let mut upstream = pool.connect(addr, shared).await?.upstream;
    let response = upstream.sender.send_request(again).await?;
    Ok((upstream, response))
}

/// RFC 9110 9.2.2: the methods whose request may be repeated with the same effect.
pub(super) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// What it takes to send a request again: its head (it has no body).
struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Replay {
    /// `None` for a request that must not go twice.
    fn of(request: &Request<ClientBody>) -> Option<Replay> {
        if !is_idempotent(request.method()) || !request.body().is_end_stream() {
            return None;
        }
        Some(Replay {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
        })
    }

    fn request(self) -> Request<RequestBody> {
        let mut request = Request::new(Either::Right(Full::default()));
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = self.headers;
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idempotent_methods_may_go_twice() {
        for method in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(is_idempotent(&method.parse().unwrap()), "{method}");
        }
        for method in ["POST", "PATCH", "CONNECT", "PURGE"] {
            assert!(!is_idempotent(&method.parse().unwrap()), "{method}");
        }
    }
}

//! A minimal HTTP/1.1 client over hyper's connection API. Each connection slot is one task that
//! owns one keep-alive connection and drives it itself (request, response and the connection's I/O
//! in the same task: no pool lock, no task per request, no wake-up between tasks), so the probe
//! decides which request goes on a fresh connection and can tell how each one failed.
//!
//! Reuse policy (what a careful real client does):
//! - an idle connection is watched while idle, so one the server closes is dropped before reuse;
//! - a response with `Connection: close` (or HTTP/1.0 without keep-alive) is honoured: that
//!   connection is not reused;
//! - a reused connection that breaks after the request went out and before a complete response
//!   counts as `reset`, not retried: a browser or a proxy without retries shows that to its user.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, USER_AGENT};
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::ProbeError;
use crate::outcome::{FailureKind, Outcome};

/// Bodies are read to the end (to keep the connection reusable) but only this much is kept to look
/// for a JSON `version` field.
const MAX_KEPT_BODY: usize = 64 * 1024;

type Sender = SendRequest<Empty<Bytes>>;
type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An open connection: the handle to send on, and the future that does its I/O.
pub(crate) struct Connection {
    sender: Sender,
    driver: Driver,
    /// The driver finished: the connection is closed.
    closed: bool,
}

impl Connection {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Resolves when the server closes the idle connection (or it fails).
    pub(crate) async fn closed(&mut self) {
        if !self.closed {
            (&mut self.driver).await;
            self.closed = true;
        }
    }
}

/// What every request is built from, and how answers are read.
pub(crate) struct Client {
    /// `host:port` to connect to.
    authority: String,
    host_header: HeaderValue,
    path: Uri,
    timeout: Duration,
    version_header: HeaderName,
    fallback_version_header: Option<HeaderName>,
}

impl Client {
    pub(crate) fn new(
        url: &Uri,
        timeout: Duration,
        version_header: &str,
        fallback_version_header: Option<&str>,
    ) -> Result<Self, ProbeError> {
        let bad = |reason: &str| ProbeError::Config(format!("url {url}: {reason}"));
        match url.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(bad(&format!("scheme {other} is not supported (http only)")));
            }
            None => return Err(bad("missing scheme (http://host:port/path)")),
        }
        let host = url.host().ok_or_else(|| bad("missing host"))?;
        let port = url.port_u16().unwrap_or(80);
        // `[::1]` stays bracketed in the Uri's host, which is the form connect() needs.
        let authority = format!("{host}:{port}");
        let host_header = HeaderValue::from_str(
            url.authority()
                .map(|a| a.as_str())
                .ok_or_else(|| bad("missing host"))?,
        )
        .map_err(|_| bad("host is not a valid header value"))?;
        let path = url
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse::<Uri>()
            .map_err(|e| bad(&e.to_string()))?;
        let header = |name: &str| {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ProbeError::Config(format!("invalid header name {name:?}")))
        };
        Ok(Client {
            authority,
            host_header,
            path,
            timeout,
            version_header: header(version_header)?,
            fallback_version_header: fallback_version_header.map(header).transpose()?,
        })
    }

    /// Sends one GET on the slot's keep-alive connection (opened when there is none), or on a fresh
    /// one that is closed after the answer. Leaves `slot` empty when the connection cannot be
    /// reused.
    pub(crate) async fn execute(&self, slot: &mut Option<Connection>, fresh: bool) -> Outcome {
        let result = tokio::time::timeout(self.timeout, async {
            if fresh {
                let mut connection = self.connect().await.map_err(Outcome::failed)?;
                Ok(self.exchange(&mut connection).await.0)
            } else {
                if slot
                    .as_ref()
                    .is_none_or(|c| c.closed || c.sender.is_closed())
                {
                    *slot = Some(self.connect().await.map_err(Outcome::failed)?);
                }
                let connection = slot.as_mut().expect("just filled");
                let (outcome, reusable) = self.exchange(connection).await;
                if !reusable {
                    *slot = None;
                }
                Ok(outcome)
            }
        })
        .await;
        match result {
            Ok(Ok(outcome)) | Ok(Err(outcome)) => outcome,
            Err(_elapsed) => {
                // Mid-request: the connection's state is unknown, do not reuse it.
                *slot = None;
                Outcome::failed(FailureKind::Timeout)
            }
        }
    }

    /// One request and its answer, driving the connection's I/O in this task meanwhile. Returns
    /// the outcome and whether the connection may be reused.
    async fn exchange(&self, connection: &mut Connection) -> (Outcome, bool) {
        let Connection {
            sender,
            driver,
            closed,
        } = connection;
        let request = Request::get(self.path.clone())
            .header(HOST, self.host_header.clone())
            .header(USER_AGENT, concat!("zdd-probe/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<Bytes>::new())
            .expect("request parts are validated in Client::new");
        let exchange = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let reusable = keeps_alive(&response);
            let status = response.status();
            let header_version = header_str(&response, &self.version_header);
            let fallback_version = self
                .fallback_version_header
                .as_ref()
                .and_then(|name| header_str(&response, name));
            let body = read_body(response.into_body(), header_version.is_none()).await?;
            let outcome = match FailureKind::from_status(status) {
                Some(kind) => Outcome::Failed {
                    kind,
                    answered: true,
                },
                None => Outcome::Ok {
                    version: header_version
                        .or_else(|| json_version(&body))
                        .or(fallback_version),
                },
            };
            Ok::<_, hyper::Error>((outcome, reusable))
        };
        tokio::pin!(exchange);
        let result = loop {
            if *closed {
                // The connection ended; the exchange finishes with what it got (or an error).
                break exchange.await;
            }
            tokio::select! {
                biased;
                result = &mut exchange => break result,
                () = &mut *driver => *closed = true,
            }
        };
        match result {
            Ok((outcome, reusable)) => (outcome, reusable && !*closed),
            Err(err) => (Outcome::failed(FailureKind::from_hyper(&err)), false),
        }
    }

    async fn connect(&self) -> Result<Connection, FailureKind> {
        let stream = TcpStream::connect(self.authority.as_str())
            .await
            .map_err(|err| FailureKind::from_io(&err))?;
        // Small requests: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| FailureKind::from_hyper(&err))?;
        Ok(Connection {
            sender,
            // Errors surface on the request that was in flight.
            driver: Box::pin(async move {
                let _ = connection.await;
            }),
            closed: false,
        })
    }
}

/// Whether the server lets the connection be reused after this response.
fn keeps_alive(response: &Response<Incoming>) -> bool {
    let has_token = |token: &str| {
        response.headers().get_all(CONNECTION).iter().any(|value| {
            value
                .to_str()
                .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    if response.version() == http::Version::HTTP_10 {
        has_token("keep-alive")
    } else {
        !has_token("close")
    }
}

fn header_str(response: &Response<Incoming>, name: &HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Reads the whole body; keeps its start only when it may carry the version.
async fn read_body(mut body: Incoming, keep: bool) -> Result<Vec<u8>, hyper::Error> {
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data()
            && keep
            && kept.len() < MAX_KEPT_BODY
        {
            let room = MAX_KEPT_BODY - kept.len();
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(kept)
}

/// The `version` field of a JSON object body (a string, or a number written as text).
fn json_version(body: &[u8]) -> Option<String> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    if body[start] != b'{' {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    match value.get("version")? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_comes_from_a_json_object_body() {
        assert_eq!(
            json_version(br#" {"version":"v2","x":1}"#),
            Some("v2".into())
        );
        assert_eq!(json_version(br#"{"version":3}"#), Some("3".into()));
        assert_eq!(json_version(br#"{"name":"v2"}"#), None);
        assert_eq!(json_version(b"v2"), None);
        assert_eq!(json_version(b"{not json"), None);
    }

    #[test]
    fn only_http_urls_with_a_host_are_accepted() {
        let client = |url: &str| {
            Client::new(
                &url.parse().unwrap(),
                Duration::from_secs(1),
                "X-Version",
                None,
            )
        };
        assert!(client("http://127.0.0.1:8080/health?x=1").is_ok());
        assert!(client("http://[::1]:8080/").is_ok());
        assert!(client("https://127.0.0.1/").is_err());
        assert!(client("/just/a/path").is_err());
    }
}

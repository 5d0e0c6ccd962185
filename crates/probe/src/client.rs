//! A minimal HTTP/1.1 client over hyper's connection API, with its own pool of keep-alive
//! connections, so the probe decides which request goes on a fresh connection and can tell how
//! each one failed.
//!
//! Reuse policy (what a careful real client does):
//! - an idle connection the server has already closed is noticed before sending and skipped;
//! - a response with `Connection: close` (or HTTP/1.0 without keep-alive) is honoured: that
//!   connection is not reused;
//! - a reused connection that breaks after the request went out and before a complete response
//!   counts as `reset`, not retried: a browser or a proxy without retries shows that to its user.

use std::sync::Mutex;
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

pub(crate) struct Client {
    /// `host:port` to connect to.
    authority: String,
    host_header: HeaderValue,
    path: Uri,
    timeout: Duration,
    version_header: HeaderName,
    fallback_version_header: Option<HeaderName>,
    idle: Mutex<Vec<Sender>>,
    max_idle: usize,
}

impl Client {
    pub(crate) fn new(
        url: &Uri,
        timeout: Duration,
        version_header: &str,
        fallback_version_header: Option<&str>,
        max_idle: usize,
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
            idle: Mutex::new(Vec::new()),
            max_idle,
        })
    }

    /// Sends one GET; `fresh` forces a new connection (closed after the answer).
    pub(crate) async fn execute(&self, fresh: bool) -> Outcome {
        match tokio::time::timeout(self.timeout, self.execute_untimed(fresh)).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => Outcome::failed(FailureKind::Timeout),
        }
    }

    async fn execute_untimed(&self, fresh: bool) -> Outcome {
        let reused = if fresh { None } else { self.checkout().await };
        let mut sender = match reused {
            Some(sender) => sender,
            None => match self.connect().await {
                Ok(sender) => sender,
                Err(kind) => return Outcome::failed(kind),
            },
        };
        let request = Request::get(self.path.clone())
            .header(HOST, self.host_header.clone())
            .header(USER_AGENT, concat!("zdd-probe/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<Bytes>::new())
            .expect("request parts are validated in Client::new");
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(err) => return Outcome::failed(FailureKind::from_hyper(&err)),
        };
        let reusable = !fresh && keeps_alive(&response);
        let status = response.status();
        let header_version = header_str(&response, &self.version_header);
        let fallback_version = self
            .fallback_version_header
            .as_ref()
            .and_then(|name| header_str(&response, name));
        let body = match read_body(response.into_body(), header_version.is_none()).await {
            Ok(body) => body,
            Err(err) => return Outcome::failed(FailureKind::from_hyper(&err)),
        };
        if reusable {
            self.checkin(sender);
        }
        if let Some(kind) = FailureKind::from_status(status) {
            return Outcome::Failed {
                kind,
                answered: true,
            };
        }
        let version = header_version
            .or_else(|| json_version(&body))
            .or(fallback_version);
        Outcome::Ok { version }
    }

    /// An idle keep-alive connection that is still open, if any.
    async fn checkout(&self) -> Option<Sender> {
        loop {
            let mut sender = self.idle.lock().expect("pool poisoned").pop()?;
            if sender.is_closed() {
                continue;
            }
            // Waits for the connection task to mark it idle; fails if the server closed it.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn checkin(&self, sender: Sender) {
        let mut idle = self.idle.lock().expect("pool poisoned");
        if idle.len() < self.max_idle {
            idle.push(sender);
        }
    }

    async fn connect(&self) -> Result<Sender, FailureKind> {
        let stream = TcpStream::connect(self.authority.as_str())
            .await
            .map_err(|err| FailureKind::from_io(&err))?;
        // Small requests: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| FailureKind::from_hyper(&err))?;
        // Ends when the sender is dropped or the server closes; errors surface on the request.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
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
                4,
            )
        };
        assert!(client("http://127.0.0.1:8080/health?x=1").is_ok());
        assert!(client("http://[::1]:8080/").is_ok());
        assert!(client("https://127.0.0.1/").is_err());
        assert!(client("/just/a/path").is_err());
    }
}

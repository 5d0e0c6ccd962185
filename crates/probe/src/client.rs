//! A minimal HTTP/1.1 client: each connection slot takes a keep-alive TCP connection from its
//! worker's pool (or opens one) and does its request and response itself, with a request
//! serialized once for the whole run and the response head parsed in place by `httparse` (the
//! parser hyper uses). hyper's client connection costs
//! about as much CPU as the kernel's loopback TCP per request (a dispatch channel, a oneshot, header
//! maps and a dozen allocations); the probe sends one fixed GET, reads the status, two headers and
//! the body's framing, so it does that directly and keeps its CPU for sending at the rate.
//!
//! Reuse policy (what a careful real client does):
//! - a connection is opened only when no idle one is free, and the most recently used idle one goes
//!   first ([`Pool`]), so the connections follow the requests in flight, not the slots;
//! - an idle connection is looked at just before reuse, so one the server closed, or sent bytes on
//!   that nobody asked for, is dropped instead of reused;
//! - a response with `Connection: close` (or HTTP/1.0 without keep-alive), or whose body ends with
//!   the connection, is honoured: that connection is not reused;
//! - a reused connection that breaks after the request went out and before a complete response
//!   counts as `reset`, not retried: a browser or a proxy without retries shows that to its user;
//! - at the open-file limit a request waits for a connection (an idle one coming back, or room
//!   made by closing an idle one) instead of failing, and one warning a second says how often a
//!   connect failed.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ProbeError;
use crate::fd_limit::{Throttled, is_fd_limit};
use crate::outcome::{FailureKind, RequestOutcome};
use crate::pool::{OpenConnections, Pool};

/// Bodies are read to the end (to keep the connection reusable) but only this much is kept to look
/// for a JSON `version` field.
const MAX_KEPT_BODY: usize = 64 * 1024;
/// A response head (or a chunk-size line, or trailers) longer than this is malformed.
const MAX_HEAD: usize = 64 * 1024;
/// Headers parsed without an allocation; a head with more is parsed again with room for them.
const MAX_HEADERS: usize = 100;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;
/// Longest wait between two connect attempts at the open-file limit.
const MAX_CONNECT_PAUSE: Duration = Duration::from_millis(50);

/// An open keep-alive connection and what was read from it.
pub(crate) struct Connection {
    stream: TcpStream,
    /// Bytes received; `buf[pos..]` are not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    /// The server closed it (or it cannot be reused).
    closed: bool,
    /// Counts it open until it is dropped.
    open: Arc<OpenConnections>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.open.closed();
    }
}

impl Connection {
    fn new(stream: TcpStream, open: Arc<OpenConnections>) -> Self {
        open.opened();
        Connection {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            closed: false,
            open,
        }
    }

    /// Whether the connection can carry the next request: nothing arrived since its last answer,
    /// neither the server's close (the request would go out on a dead connection and fail as
    /// `reset` where a new connection would show what the server does now) nor bytes nobody asked
    /// for (they would be read as the next answer). Idle connections are not watched, so this
    /// looks before each reuse, as a careful client does (Chrome's `IsConnectedAndIdle`). A
    /// `MSG_PEEK` on the socket itself: tokio's readiness may not have seen the close yet.
    pub(crate) fn still_idle(&mut self) -> bool {
        if !self.closed {
            let mut byte = [MaybeUninit::<u8>::uninit(); 1];
            match socket2::SockRef::from(&self.stream).peek(&mut byte) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                // The end of the stream, bytes, or an error (a reset).
                _ => self.closed = true,
            }
        }
        !self.closed
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more bytes from the server; the end of the stream is [`ExchangeError::Incomplete`].
    async fn fill(&mut self) -> Result<(), ExchangeError> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.buf.capacity() - self.buf.len() < READ_CHUNK {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(READ_CHUNK);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(ExchangeError::Incomplete),
            Ok(_) => Ok(()),
            Err(err) => Err(ExchangeError::Io(err)),
        }
    }

    /// Consumes up to `wanted` unread bytes (reading more when none are buffered), keeping them in
    /// `kept` when given, up to [`MAX_KEPT_BODY`]. Returns how many were consumed.
    async fn consume(
        &mut self,
        wanted: u64,
        kept: &mut Option<Vec<u8>>,
    ) -> Result<usize, ExchangeError> {
        if self.pos == self.buf.len() {
            self.fill().await?;
        }
        let available = self.unread();
        let take = available
            .len()
            .min(usize::try_from(wanted).unwrap_or(usize::MAX));
        if let Some(kept) = kept {
            let room = MAX_KEPT_BODY.saturating_sub(kept.len());
            kept.extend_from_slice(&available[..take.min(room)]);
        }
        self.pos += take;
        Ok(take)
    }
}

/// Why an exchange did not produce a complete response.
#[derive(Debug)]
enum ExchangeError {
    Io(io::Error),
    /// The connection ended before a complete response.
    Incomplete,
    /// Not a valid HTTP/1.x response.
    Malformed,
}

impl ExchangeError {
    fn kind(&self) -> FailureKind {
        match self {
            ExchangeError::Io(err) => FailureKind::from_io(err),
            ExchangeError::Incomplete => FailureKind::Reset,
            ExchangeError::Malformed => FailureKind::Other,
        }
    }
}

/// How the response body is delimited.
#[derive(Debug, PartialEq)]
enum Framing {
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// What the probe needs from a response head.
#[derive(Debug)]
struct Head {
    status: u16,
    framing: Framing,
    keep_alive: bool,
    version: Option<String>,
    fallback_version: Option<String>,
}

/// What every request is built from, and how answers are read.
pub(crate) struct Client {
    /// `host:port` to connect to.
    authority: String,
    /// The whole request, serialized once.
    request: Vec<u8>,
    /// The request of each segment (its headers added), by segment index.
    segment_requests: Vec<Vec<u8>>,
    segments: Vec<crate::segments::Segment>,
    timeout: Duration,
    version_header: HeaderName,
    fallback_version_header: Option<HeaderName>,
    open: Arc<OpenConnections>,
    connect_failures: Throttled,
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
        // A parsed Uri holds no spaces or line breaks, so both go into the request line as is.
        let host_header = url
            .authority()
            .map(|a| a.as_str())
            .ok_or_else(|| bad("missing host"))?;
        let path = url.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let path = if path.is_empty() { "/" } else { path };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: zdd-probe/{}\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        )
        .into_bytes();
        let header = |name: &str| {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ProbeError::Config(format!("invalid header name {name:?}")))
        };
        Ok(Client {
            authority,
            request,
            segment_requests: Vec::new(),
            segments: Vec::new(),
            timeout,
            version_header: header(version_header)?,
            fallback_version_header: fallback_version_header.map(header).transpose()?,
            open: Arc::default(),
            connect_failures: Throttled::default(),
        })
    }

    /// Sends the segments' requests with their headers.
    pub(crate) fn with_segments(mut self, segments: &[crate::segments::Segment]) -> Self {
        self.segment_requests = segments
            .iter()
            .map(|s| crate::segments::request_with(&self.request, &s.headers))
            .collect();
        self.segments = segments.to_vec();
        self
    }

    /// The request bytes for request `seq` (its segment's, if it is in one).
    fn request_for(&self, seq: u64) -> &[u8] {
        match crate::segments::segment_of(seq, &self.segments) {
            Some(index) => &self.segment_requests[index],
            None => &self.request,
        }
    }

    /// The most connections open at once so far, across the worker threads.
    pub(crate) fn max_connections_open(&self) -> usize {
        self.open.max()
    }

    /// The longest a request may take, connecting included.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends one GET on an idle keep-alive connection of `pool` (opened when there is none), or
    /// on a fresh one that is closed after the answer, unless `expired` resolves first (a
    /// `timeout`). A keep-alive connection whose answer was read whole goes back to `pool`.
    #[cfg(test)]
    pub(crate) async fn execute(
        &self,
        pool: &Pool,
        fresh: bool,
        expired: impl Future<Output = ()>,
    ) -> RequestOutcome {
        self.execute_request(pool, fresh, &self.request, expired)
            .await
    }

    /// As `execute`, for request `seq`: with its segment's headers when it belongs to one.
    pub(crate) async fn execute_seq(
        &self,
        pool: &Pool,
        fresh: bool,
        seq: u64,
        expired: impl Future<Output = ()>,
    ) -> RequestOutcome {
        self.execute_request(pool, fresh, self.request_for(seq), expired)
            .await
    }

    async fn execute_request(
        &self,
        pool: &Pool,
        fresh: bool,
        request: &[u8],
        expired: impl Future<Output = ()>,
    ) -> RequestOutcome {
        let work = async {
            let mut connection = match self.acquire(pool, fresh).await {
                Ok(connection) => connection,
                Err(kind) => return RequestOutcome::failed(kind),
            };
            let outcome = self.exchange(&mut connection, request).await;
            if !fresh && !connection.closed {
                pool.put(connection);
            }
            outcome
        };
        tokio::select! {
            biased;
            outcome = work => outcome,
            // Mid-request: the connection, dropped with `work`, closes.
            () = expired => RequestOutcome::failed(FailureKind::Timeout),
        }
    }

    /// A connection for one request: an idle one of `pool` (unless `fresh`), else a new one. At
    /// the open-file limit it closes an idle one to make room, or waits for one to come back (the
    /// request's timeout bounds the wait), rather than failing a request the server never saw.
    async fn acquire(&self, pool: &Pool, fresh: bool) -> Result<Connection, FailureKind> {
        if !fresh && let Some(connection) = pool.take() {
            return Ok(connection);
        }
        let mut pause = Duration::from_millis(1);
        loop {
            match self.connect().await {
                Ok(connection) => return Ok(connection),
                Err(err) if is_fd_limit(&err) => {
                    self.connect_failures.record(&err);
                    if pool.close_oldest() {
                        continue;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_CONNECT_PAUSE);
                    if !fresh && let Some(connection) = pool.take() {
                        return Ok(connection);
                    }
                }
                Err(err) => return Err(FailureKind::from_io(&err)),
            }
        }
    }

    /// One request and its answer; marks the connection closed when it cannot be reused.
    async fn exchange(&self, connection: &mut Connection, request: &[u8]) -> RequestOutcome {
        match self.try_exchange(connection, request).await {
            Ok((outcome, reusable)) => {
                connection.closed |= !reusable;
                outcome
            }
            Err(err) => {
                connection.closed = true;
                RequestOutcome::failed(err.kind())
            }
        }
    }

    async fn try_exchange(
        &self,
        connection: &mut Connection,
        request: &[u8],
    ) -> Result<(RequestOutcome, bool), ExchangeError> {
        connection
            .stream
            .write_all(request)
            .await
            .map_err(ExchangeError::Io)?;
        connection.buf.clear();
        connection.pos = 0;
        let head = loop {
            match self.parse_head(connection)? {
                // 1xx (but 101): an interim answer, the real one follows.
                Some(head) if (100..200).contains(&head.status) && head.status != 101 => {}
                Some(head) => break head,
                None => {
                    if connection.unread().len() > MAX_HEAD {
                        return Err(ExchangeError::Malformed);
                    }
                    connection.fill().await?;
                }
            }
        };
        let mut kept = head.version.is_none().then(Vec::new);
        let (framing, reusable) = if head.status == 101 {
            // Switched to another protocol: nothing more to read as HTTP/1.1.
            (Framing::Length(0), false)
        } else {
            (head.framing, head.keep_alive)
        };
        let complete = match framing {
            Framing::Length(mut remaining) => {
                while remaining > 0 {
                    remaining -= connection.consume(remaining, &mut kept).await? as u64;
                }
                true
            }
            Framing::Chunked => {
                read_chunked(connection, &mut kept).await?;
                true
            }
            Framing::UntilClose => {
                loop {
                    match connection.consume(u64::MAX, &mut kept).await {
                        Ok(_) => {}
                        Err(ExchangeError::Incomplete) => break,
                        Err(err) => return Err(err),
                    }
                }
                false
            }
        };
        // Bytes after the response (nobody asked for them) make the connection unusable too.
        let reusable = reusable && complete && connection.unread().is_empty();
        let version = head
            .version
            .or_else(|| kept.as_deref().and_then(json_version))
            .or(head.fallback_version);
        let outcome = match FailureKind::from_status(head.status) {
            Some(kind) => RequestOutcome::Failed {
                kind,
                answered: true,
                version,
            },
            None => RequestOutcome::Ok { version },
        };
        Ok((outcome, reusable))
    }

    /// Parses a response head from the unread bytes: `None` until it is complete.
    fn parse_head(&self, connection: &mut Connection) -> Result<Option<Head>, ExchangeError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut many;
        let mut response = httparse::Response::new(&mut headers);
        let mut parsed = response.parse(connection.unread());
        if matches!(parsed, Err(httparse::Error::TooManyHeaders)) {
            // Rare but valid (many `Set-Cookie` lines), and a browser shows such an answer: parse
            // again with room for every line the head can hold (a header line is 3 bytes or more).
            many = vec![httparse::EMPTY_HEADER; connection.unread().len() / 3 + 1];
            response = httparse::Response::new(&mut many);
            parsed = response.parse(connection.unread());
        }
        let length = match parsed {
            // Over the limit whether it came in one read or in many: the same answer is classified
            // the same way however TCP cut it.
            Ok(httparse::Status::Complete(length)) if length > MAX_HEAD => {
                return Err(ExchangeError::Malformed);
            }
            Ok(httparse::Status::Complete(length)) => length,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ExchangeError::Malformed),
        };
        let status = response.code.ok_or(ExchangeError::Malformed)?;
        let http10 = response.version == Some(0);
        let mut head = Head {
            status,
            framing: Framing::UntilClose,
            keep_alive: false,
            version: None,
            fallback_version: None,
        };
        let mut content_length: Option<u64> = None;
        let mut chunked: Option<bool> = None;
        let (mut close, mut keep_alive) = (false, false);
        for header in response.headers.iter() {
            let name = header.name;
            let value = || std::str::from_utf8(header.value).map(str::trim).ok();
            if name.eq_ignore_ascii_case("content-length") {
                // Digits only (`+5` is not a length), and a list of one same value (`5, 5`, from
                // a proxy that merged duplicates) is that value (RFC 9110, 8.6).
                for item in value().ok_or(ExchangeError::Malformed)?.split(',') {
                    let item = item.trim();
                    if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(ExchangeError::Malformed);
                    }
                    let length = item.parse::<u64>().map_err(|_| ExchangeError::Malformed)?;
                    if content_length.is_some_and(|l| l != length) {
                        return Err(ExchangeError::Malformed);
                    }
                    content_length = Some(length);
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // Chunked only when it is the last coding applied.
                let last = value().and_then(|v| v.rsplit(',').next()).map(str::trim);
                chunked = Some(last.is_some_and(|c| c.eq_ignore_ascii_case("chunked")));
            } else if name.eq_ignore_ascii_case("connection") {
                for token in value().unwrap_or("").split(',').map(str::trim) {
                    close |= token.eq_ignore_ascii_case("close");
                    keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
            } else if name.eq_ignore_ascii_case(self.version_header.as_str()) {
                head.version = value().filter(|v| !v.is_empty()).map(str::to_string);
            } else if let Some(fallback) = &self.fallback_version_header
                && name.eq_ignore_ascii_case(fallback.as_str())
            {
                head.fallback_version = value().filter(|v| !v.is_empty()).map(str::to_string);
            }
        }
        // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only when told to keep it.
        head.keep_alive = !close && (!http10 || keep_alive);
        head.framing = if status < 200 || status == 204 || status == 304 {
            Framing::Length(0)
        } else {
            match (chunked, content_length) {
                (Some(true), _) => Framing::Chunked,
                // Another transfer coding: the body ends with the connection (RFC 9112, 6.3).
                (Some(false), _) => Framing::UntilClose,
                (None, Some(length)) => Framing::Length(length),
                (None, None) => Framing::UntilClose,
            }
        };
        connection.pos += length;
        Ok(Some(head))
    }

    async fn connect(&self) -> io::Result<Connection> {
        let stream = TcpStream::connect(self.authority.as_str()).await?;
        // Small requests: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        Ok(Connection::new(stream, self.open.clone()))
    }
}

/// Reads a chunked body to its end (trailers included).
async fn read_chunked(
    connection: &mut Connection,
    kept: &mut Option<Vec<u8>>,
) -> Result<(), ExchangeError> {
    loop {
        let size = match httparse::parse_chunk_size(connection.unread()) {
            Ok(httparse::Status::Complete((used, size))) => {
                connection.pos += used;
                size
            }
            Ok(httparse::Status::Partial) => {
                if connection.unread().len() > MAX_HEAD {
                    return Err(ExchangeError::Malformed);
                }
                connection.fill().await?;
                continue;
            }
            Err(_) => return Err(ExchangeError::Malformed),
        };
        if size == 0 {
            break;
        }
        let mut remaining = size;
        while remaining > 0 {
            remaining -= connection.consume(remaining, kept).await? as u64;
        }
        while connection.unread().len() < 2 {
            connection.fill().await?;
        }
        if &connection.unread()[..2] != b"\r\n" {
            return Err(ExchangeError::Malformed);
        }
        connection.pos += 2;
    }
    // Trailers: header lines, then an empty line.
    loop {
        let unread = connection.unread();
        if unread.starts_with(b"\r\n") {
            connection.pos += 2;
            return Ok(());
        }
        if unread.len() >= 2
            && let Some(end) = unread.windows(4).position(|w| w == b"\r\n\r\n")
        {
            connection.pos += end + 4;
            return Ok(());
        }
        if unread.len() > MAX_HEAD {
            return Err(ExchangeError::Malformed);
        }
        connection.fill().await?;
    }
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

    use std::future::pending;

    use tokio::net::TcpListener;

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
        let request = client("http://localhost:8080/health?x=1").unwrap().request;
        let request = String::from_utf8(request).unwrap();
        assert!(
            request.starts_with("GET /health?x=1 HTTP/1.1\r\nHost: localhost:8080\r\n"),
            "{request}"
        );
        assert!(request.ends_with("\r\n\r\n"));
    }

    /// A server that answers each request on one connection with the next canned response, split
    /// into tiny writes (so every parser state sees a partial read), then closes.
    async fn canned(responses: Vec<&'static [u8]>) -> (Client, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Uri = format!("http://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            for response in responses {
                let mut seen = Vec::new();
                while !seen.ends_with(b"\r\n\r\n") {
                    let n = stream.read(&mut request).await.unwrap();
                    assert!(n > 0, "client closed early");
                    seen.extend_from_slice(&request[..n]);
                }
                // Big ones in 64 pieces: still many reads, without a test that takes minutes.
                for piece in response.chunks(3.max(response.len() / 64)) {
                    // The client may give up (on garbage) before the end.
                    if stream.write_all(piece).await.is_err() {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
            }
        });
        let client = Client::new(&url, Duration::from_secs(5), "X-Version", None).unwrap();
        (client, server)
    }

    fn ok(version: &str) -> RequestOutcome {
        RequestOutcome::Ok {
            version: Some(version.into()),
        }
    }

    #[tokio::test]
    async fn bodies_of_every_framing_are_read_and_the_connection_reused() {
        let (client, server) = canned(vec![
            b"HTTP/1.1 200 OK\r\nX-Version: v1\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              4\r\n{\"ve\r\n11;ext=1\r\nrsion\": \"v2\"}    \r\n0\r\nTrailer: x\r\n\r\n",
            b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nX-Version: v3\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nX-Version: v4\r\n\r\nuntil the end",
        ])
        .await;
        let pool = Pool::default();
        assert_eq!(client.execute(&pool, false, pending()).await, ok("v1"));
        assert_eq!(client.execute(&pool, false, pending()).await, ok("v2"));
        assert_eq!(
            client.execute(&pool, false, pending()).await,
            RequestOutcome::Failed {
                kind: FailureKind::Http5xx,
                answered: true,
                version: None,
            }
        );
        assert_eq!(client.execute(&pool, false, pending()).await, ok("v3"));
        assert_eq!(pool.len(), 1, "one connection so far");
        assert_eq!(client.execute(&pool, false, pending()).await, ok("v4"));
        assert_eq!(pool.len(), 0, "a body ending with the connection");
        server.await.unwrap();
    }

    /// Reads one request head (the probe's requests have no body).
    async fn read_request(stream: &mut TcpStream) {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "client closed before its request");
            seen.extend_from_slice(&buf[..n]);
        }
    }

    /// A request must not go out on a connection that, since its last complete answer, was closed by the
    /// server (the request would fail as `reset` though the server answers on a new connection) or
    /// got bytes nobody asked for (a late or duplicated answer, which would be taken as the answer
    /// to the next request).
    #[tokio::test]
    async fn a_close_or_stray_bytes_after_an_answer_are_not_taken_for_the_next_answer() {
        let stray: &'static [u8] =
            b"HTTP/1.1 200 OK\r\nX-Version: stale\r\nContent-Length: 0\r\n\r\n";
        for after in [None, Some(stray)] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url: Uri = format!("http://{}/", listener.local_addr().unwrap())
                .parse()
                .unwrap();
            // The stray bytes go out once the first answer was read (arriving with it, they
            // show as bytes after the answer and the connection is not kept).
            let (answer_read, stray_due) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(async move {
                let (mut first, _) = listener.accept().await.unwrap();
                read_request(&mut first).await;
                first
                    .write_all(b"HTTP/1.1 200 OK\r\nX-Version: v1\r\nContent-Length: 0\r\n\r\n")
                    .await
                    .unwrap();
                // Kept open with stray bytes, or closed: either way it cannot carry request 2.
                let _first = match after {
                    Some(bytes) => {
                        stray_due.await.unwrap();
                        first.write_all(bytes).await.unwrap();
                        Some(first)
                    }
                    None => {
                        drop(first);
                        None
                    }
                };
                let (mut second, _) = listener.accept().await.unwrap();
                read_request(&mut second).await;
                second
                    .write_all(b"HTTP/1.1 200 OK\r\nX-Version: v2\r\nContent-Length: 0\r\n\r\n")
                    .await
                    .unwrap();
                std::future::pending::<()>().await;
            });
            let client = Client::new(&url, Duration::from_secs(5), "X-Version", None).unwrap();
            let pool = Pool::default();
            assert_eq!(client.execute(&pool, false, pending()).await, ok("v1"));
            let _ = answer_read.send(());
            // Wait until the stray bytes or the close have reached the client's socket.
            let open = pool.pop_unchecked().expect("kept alive");
            tokio::time::timeout(Duration::from_secs(5), open.stream.peek(&mut [0u8; 1]))
                .await
                .expect("the server's bytes or close arrive")
                .unwrap();
            pool.put(open);
            assert_eq!(
                client.execute(&pool, false, pending()).await,
                ok("v2"),
                "after {:?}",
                after.map(String::from_utf8_lossy)
            );
            server.abort();
        }
    }

    /// A head of 32 KiB arriving in many pieces is read whole; one well over the 64 KiB limit is
    /// `other` (not a hang, not a reset); 150 headers are fine. A 1xx with headers and a 304 with a `Content-Length`
    /// carry no body: the next answer on the connection is read right.
    #[tokio::test]
    async fn big_heads_interim_answers_and_bodiless_statuses() {
        let head = |filler: usize| -> &'static [u8] {
            let text = format!(
                "HTTP/1.1 200 OK\r\nX-Big: {}\r\nX-Version: big\r\nContent-Length: 2\r\n\r\nok",
                "a".repeat(filler)
            );
            Box::leak(text.into_bytes().into_boxed_slice())
        };
        // More headers than the parser's first array holds (as many `Set-Cookie` lines can be).
        let many_headers: &'static [u8] = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\n{}X-Version: many\r\nContent-Length: 0\r\n\r\n",
                (0..150)
                    .map(|i| format!("Set-Cookie: c{i}=1\r\n"))
                    .collect::<String>()
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        let (client, server) = canned(vec![
            head(32 * 1024),
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\nX-Version: hint\r\n\r\n\
              HTTP/1.1 304 Not Modified\r\nX-Version: v5\r\nContent-Length: 100\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Version: v6\r\n\r\nok",
            many_headers,
            head(100 * 1024),
        ])
        .await;
        let pool = Pool::default();
        assert_eq!(client.execute(&pool, false, pending()).await, ok("big"));
        assert_eq!(client.execute(&pool, false, pending()).await, ok("v5"));
        assert_eq!(client.execute(&pool, false, pending()).await, ok("v6"));
        assert_eq!(client.execute(&pool, false, pending()).await, ok("many"));
        assert_eq!(pool.len(), 1, "one connection for the first four");
        assert_eq!(
            client.execute(&pool, false, pending()).await,
            RequestOutcome::failed(FailureKind::Other)
        );
        assert_eq!(pool.len(), 0);
        server.await.unwrap();
    }

    /// The head limit holds however the head arrived: here all of it in the buffer at once (a
    /// read into a buffer grown by earlier answers), not only when it comes in pieces.
    #[tokio::test]
    async fn a_head_over_the_limit_is_malformed_even_when_read_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let mut connection = Connection::new(stream, Arc::default());
        let over = "a".repeat(MAX_HEAD);
        connection.buf =
            format!("HTTP/1.1 200 OK\r\nX-Big: {over}\r\nContent-Length: 0\r\n\r\n").into_bytes();
        let url = "http://127.0.0.1:1/".parse().unwrap();
        let client = Client::new(&url, Duration::from_secs(1), "X-Version", None).unwrap();
        assert!(matches!(
            client.parse_head(&mut connection),
            Err(ExchangeError::Malformed)
        ));
    }

    /// `Content-Length` is digits only; a list of one same value (duplicates merged by a proxy)
    /// is that value, different values are malformed.
    #[tokio::test]
    async fn content_length_lists_and_signs() {
        let (client, server) = canned(vec![
            b"HTTP/1.1 200 OK\r\nX-Version: v1\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nX-Version: v2\r\nContent-Length: 2\r\n\r\nok",
        ])
        .await;
        let pool = Pool::default();
        assert_eq!(client.execute(&pool, false, pending()).await, ok("v1"));
        assert_eq!(client.execute(&pool, false, pending()).await, ok("v2"));
        server.await.unwrap();
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2,\r\n\r\nok",
        ] {
            let (client, server) = canned(vec![bad]).await;
            let pool = Pool::default();
            assert_eq!(
                client.execute(&pool, false, pending()).await,
                RequestOutcome::failed(FailureKind::Other),
                "{}",
                String::from_utf8_lossy(bad)
            );
            server.await.unwrap();
        }
    }

    /// A server that closes after the head, or in the middle of a chunked body: `reset`, never ok.
    #[tokio::test]
    async fn a_close_after_the_head_or_inside_a_chunked_body_is_a_reset() {
        for response in [
            &b"HTTP/1.1 200 OK\r\nX-Version: v1\r\nContent-Length: 5\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nX-Version: v1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-Version: v1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            b"HTTP/1.1 200 OK\r\nX-Version: v1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n",
        ] {
            let (client, server) = canned(vec![response]).await;
            let pool = Pool::default();
            assert_eq!(
                client.execute(&pool, false, pending()).await,
                RequestOutcome::failed(FailureKind::Reset),
                "{}",
                String::from_utf8_lossy(response)
            );
            server.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_response_cut_short_is_a_reset_and_garbage_is_other() {
        let (client, server) =
            canned(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]).await;
        let pool = Pool::default();
        assert_eq!(
            client.execute(&pool, false, pending()).await,
            RequestOutcome::failed(FailureKind::Reset)
        );
        assert_eq!(pool.len(), 0);
        server.await.unwrap();

        let (client, server) = canned(vec![b"SSH-2.0-OpenSSH\r\n\r\n"]).await;
        assert_eq!(
            client.execute(&pool, false, pending()).await,
            RequestOutcome::failed(FailureKind::Other)
        );
        server.await.unwrap();
    }
}

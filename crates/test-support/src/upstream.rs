//! Servers on loopback for the tests to route to or probe:
//! - [`TestServer`], a real HTTP server that tests can stop, restart on the same port, make answer
//!   500, slow down (or hang), answer as several versions, or have record what it was sent;
//! - [`scripted_upstream`], which writes the exact bytes each edge case needs;
//! - [`refused_addr`], where nothing listens.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Where the answering version goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VersionIn {
    /// `X-Version: <v>`.
    Header,
    /// `{"version": "<v>"}`.
    JsonBody,
    /// `X-Zdd-Version: <v>` (what zdd's router adds) and nothing from the app.
    FallbackHeader,
}

pub struct Behaviour {
    pub status: AtomicU16,
    /// Answers rotate through these, one request each.
    pub versions: Mutex<Vec<String>>,
    pub version_in: Mutex<VersionIn>,
    pub delay: Mutex<Duration>,
    /// A body of its own instead of the JSON one.
    pub body: Mutex<Option<String>>,
    pub connection_close: AtomicBool,
    /// Close every connection this long after accepting it, whatever it is doing.
    pub max_connection_age: Mutex<Option<Duration>>,
    pub requests: AtomicU64,
    pub connections: AtomicU64,
    /// Keep every request (its body read whole before answering) in `seen`.
    pub record: AtomicBool,
    pub seen: Mutex<Vec<Seen>>,
}

/// A request as a [`TestServer`] got it.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    /// The first header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub behaviour: Arc<Behaviour>,
    accept_loop: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(versions: &[&str]) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let behaviour = Arc::new(Behaviour {
            status: AtomicU16::new(200),
            versions: Mutex::new(versions.iter().map(|v| v.to_string()).collect()),
            version_in: Mutex::new(VersionIn::Header),
            delay: Mutex::new(Duration::ZERO),
            body: Mutex::new(None),
            connection_close: AtomicBool::new(false),
            max_connection_age: Mutex::new(None),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            record: AtomicBool::new(false),
            seen: Mutex::new(Vec::new()),
        });
        let accept_loop = Some(tokio::spawn(serve(listener, behaviour.clone())));
        TestServer {
            addr,
            behaviour,
            accept_loop,
        }
    }

    /// A server that answers every request with 200 and `body`, naming no version.
    pub async fn answering(body: &str) -> TestServer {
        let server = TestServer::start(&[]).await;
        *server.behaviour.body.lock().unwrap() = Some(body.to_owned());
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops like a crash: the listener closes and every open connection is dropped.
    pub async fn stop(&mut self) {
        if let Some(task) = self.accept_loop.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port (tokio sets SO_REUSEADDR).
    pub async fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(err) if Instant::now() < deadline => {
                    eprintln!("rebind {}: {err}; retrying", self.addr);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(err) => panic!("cannot rebind {}: {err}", self.addr),
            }
        };
        self.accept_loop = Some(tokio::spawn(serve(listener, self.behaviour.clone())));
    }

    pub fn set_status(&self, status: u16) {
        self.behaviour.status.store(status, Ordering::SeqCst);
    }

    pub fn set_versions(&self, versions: &[&str]) {
        *self.behaviour.versions.lock().unwrap() = versions.iter().map(|v| v.to_string()).collect();
    }

    pub fn set_version_in(&self, version_in: VersionIn) {
        *self.behaviour.version_in.lock().unwrap() = version_in;
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.behaviour.delay.lock().unwrap() = delay;
    }

    pub fn requests(&self) -> u64 {
        self.behaviour.requests.load(Ordering::SeqCst)
    }

    /// From now on, keep every request it gets (see [`TestServer::seen`]).
    pub fn record_requests(&self) {
        self.behaviour.record.store(true, Ordering::SeqCst);
    }

    /// The requests recorded so far, in the order they were read whole.
    pub fn seen(&self) -> Vec<Seen> {
        self.behaviour.seen.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until it has recorded `count` requests; returns them.
    pub async fn wait_seen(&self, count: usize) -> Vec<Seen> {
        let what = format!("{count} requests recorded by {}", self.addr);
        crate::poll::eventually(&what, Duration::from_secs(10), || async {
            self.seen().len() >= count
        })
        .await;
        self.seen()
    }

    pub fn connections(&self) -> u64 {
        self.behaviour.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.accept_loop.take() {
            task.abort();
        }
    }
}

/// Accepts until aborted; aborting drops the JoinSet, which aborts every connection.
async fn serve(listener: TcpListener, behaviour: Arc<Behaviour>) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => continue,
        };
        behaviour.connections.fetch_add(1, Ordering::SeqCst);
        let behaviour = behaviour.clone();
        let max_age = *behaviour.max_connection_age.lock().unwrap();
        connections.spawn(async move {
            let service = service_fn(move |request| answer(request, behaviour.clone()));
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            match max_age {
                Some(age) => {
                    let _ = tokio::time::timeout(age, connection).await;
                }
                None => {
                    let _ = connection.await;
                }
            }
        });
        // Reap finished connections so the set stays small.
        while connections.try_join_next().is_some() {}
    }
}

async fn answer(
    request: Request<hyper::body::Incoming>,
    behaviour: Arc<Behaviour>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if behaviour.record.load(Ordering::SeqCst) {
        use http_body_util::BodyExt;
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map(|b| b.to_bytes().to_vec());
        let seen = Seen {
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or("/".into(), |p| p.to_string()),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), value)
                })
                .collect(),
            body: body.unwrap_or_default(),
        };
        behaviour.seen.lock().unwrap().push(seen);
    }
    let n = behaviour.requests.fetch_add(1, Ordering::SeqCst);
    let delay = *behaviour.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let version = {
        let versions = behaviour.versions.lock().unwrap();
        (!versions.is_empty()).then(|| versions[(n as usize) % versions.len()].clone())
    };
    let version_in = *behaviour.version_in.lock().unwrap();
    let mut builder = Response::builder().status(behaviour.status.load(Ordering::SeqCst));
    let own_body = behaviour.body.lock().unwrap().clone();
    let mut body = own_body.unwrap_or_else(|| r#"{"status":"ok"}"#.to_string());
    if let Some(version) = version {
        match version_in {
            VersionIn::Header => builder = builder.header("X-Version", &version),
            VersionIn::JsonBody => body = format!(r#"{{"version":"{version}","status":"ok"}}"#),
            VersionIn::FallbackHeader => builder = builder.header("X-Zdd-Version", &version),
        }
    }
    if behaviour.connection_close.load(Ordering::SeqCst) {
        builder = builder.header("Connection", "close");
    }
    Ok(builder
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response"))
}

/// A loopback address where nothing listens (connections are refused).
pub fn refused_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// What a scripted upstream does with request `request` (from 0) on its connection `connection`
/// (from 0, in accept order).
pub enum Step {
    /// Writes these bytes, then reads the next request.
    Answer(&'static [u8]),
    /// Writes these bytes (maybe none), then closes.
    AnswerAndClose(&'static [u8]),
    /// Writes these bytes, then nothing more until the client closes the connection.
    AnswerAndHold(&'static [u8]),
}

/// A raw upstream that reads request heads (no bodies) and answers each as its script says.
pub struct Scripted {
    pub addr: SocketAddr,
    /// Connections accepted.
    pub accepted: Arc<AtomicUsize>,
    /// Connections the client closed (or that ended with a scripted close).
    pub ended: Arc<AtomicUsize>,
}

impl Scripted {
    /// Connections open now.
    pub fn open(&self) -> usize {
        // `ended` first: every connection it counts is in `accepted` already.
        let ended = self.ended.load(Ordering::SeqCst);
        self.accepted.load(Ordering::SeqCst) - ended
    }
}

/// Starts a [`Scripted`] upstream; it runs until the test's runtime ends.
pub async fn scripted_upstream(script: fn(usize, usize) -> Step) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));
    let (accepted_count, ended_count) = (accepted.clone(), ended.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let connection = accepted_count.fetch_add(1, Ordering::SeqCst);
            let ended = ended_count.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                for request in 0.. {
                    // One request head (the tests send no bodies).
                    let head_end = loop {
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        match stream.read(&mut chunk).await {
                            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => {
                                ended.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                        }
                    };
                    buf.drain(..head_end);
                    match script(connection, request) {
                        Step::Answer(bytes) => {
                            if stream.write_all(bytes).await.is_err() {
                                ended.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                        }
                        Step::AnswerAndClose(bytes) => {
                            let _ = stream.write_all(bytes).await;
                            ended.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        Step::AnswerAndHold(bytes) => {
                            let _ = stream.write_all(bytes).await;
                            while matches!(stream.read(&mut chunk).await, Ok(n) if n > 0) {}
                            ended.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            });
        }
    });
    Scripted {
        addr,
        accepted,
        ended,
    }
}

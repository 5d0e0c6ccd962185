//! A small real HTTP server on loopback that tests can stop, restart on the same port, make answer
//! 500, slow down, or answer as several versions.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
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
    pub connection_close: AtomicBool,
    /// Close every connection this long after accepting it, whatever it is doing.
    pub max_connection_age: Mutex<Option<Duration>>,
    pub requests: AtomicU64,
    pub connections: AtomicU64,
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
            connection_close: AtomicBool::new(false),
            max_connection_age: Mutex::new(None),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });
        let accept_loop = Some(tokio::spawn(serve(listener, behaviour.clone())));
        TestServer {
            addr,
            behaviour,
            accept_loop,
        }
    }

    pub fn url(&self) -> http::Uri {
        format!("http://{}/", self.addr).parse().expect("url")
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
    _request: Request<hyper::body::Incoming>,
    behaviour: Arc<Behaviour>,
) -> Result<Response<Full<Bytes>>, Infallible> {
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
    let mut body = r#"{"status":"ok"}"#.to_string();
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

/// Polls `condition` every 20 ms until it holds; panics after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

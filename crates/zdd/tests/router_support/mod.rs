//! Helpers shared by the local-platform and router tests: a raw HTTP/1.1 client, tiny upstream
//! servers, templates for real replicas, and a look at /proc for left-over processes.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zdd::platform::{ProbeSpec, VersionTemplate};

/// One answer: status, lower-case header names, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// `GET path` on a fresh connection (`Connection: close`), with extra request headers.
pub async fn get_with(url: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Answer> {
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let request = async {
        let mut stream = TcpStream::connect(authority).await?;
        let mut text = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        stream.write_all(text.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        parse(&raw)
    };
    tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .map_err(|_| std::io::Error::other("request timed out"))?
}

pub async fn get(url: &str) -> std::io::Result<Answer> {
    get_with(url, "/", &[]).await
}

fn parse(raw: &[u8]) -> std::io::Result<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no complete answer: {text:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head:?}")))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// Polls `condition` every 50 ms until it holds; panics with `what` after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A tiny upstream: answers every request with 200 and `name` as the body. Runs until the test's
/// runtime ends.
pub async fn upstream(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(name.as_bytes())),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A loopback address where nothing listens (connections are refused).
pub fn refused_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

pub fn probe(path: &str) -> ProbeSpec {
    ProbeSpec {
        path: path.to_owned(),
        period: Duration::from_millis(100),
        timeout: Duration::from_secs(1),
        failure_threshold: 2,
        success_threshold: 1,
        initial_delay: Duration::ZERO,
    }
}

/// A replica that is a real HTTP server and exits at once on SIGTERM: Python's http.server.
pub fn python_server(version: &str, dir: &std::path::Path) -> VersionTemplate {
    VersionTemplate {
        name: version.to_owned(),
        command: [
            "python3",
            "-m",
            "http.server",
            "{port}",
            "--bind",
            "127.0.0.1",
            "--directory",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.display().to_string()])
        .collect(),
        image: None,
        env: BTreeMap::from([("APP_VERSION".to_owned(), version.to_owned())]),
        readiness: probe("/"),
        liveness: None,
        pre_stop_sleep: Duration::ZERO,
        termination_grace_period: Duration::from_secs(3),
        min_ready: Duration::ZERO,
    }
}

/// A replica that ignores SIGTERM: only SIGKILL stops it.
pub fn sigterm_ignoring_server(version: &str) -> VersionTemplate {
    let script = "import signal, sys, http.server\n\
                  signal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
                  http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, \
                  port=int(sys.argv[1]), bind='127.0.0.1')";
    VersionTemplate {
        command: vec![
            "python3".into(),
            "-c".into(),
            script.into(),
            "{port}".into(),
        ],
        ..python_server(version, std::path::Path::new("."))
    }
}

/// Processes (zombies included) whose process group is one of `groups`.
pub fn processes_in_groups(groups: &[u32]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let Some(pgrp) = fields.get(2).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if groups.contains(&pgrp) {
            found.push(stat.trim().to_owned());
        }
    }
    found
}

/// Children of this test process (zombies included) whose pid is in `pids`.
pub fn children_among(pids: &[u32]) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for pid in pids {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(me) {
            found.push(*pid);
        }
    }
    found
}

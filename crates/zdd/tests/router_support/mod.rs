//! Helpers shared by the local-platform and router tests: a raw HTTP/1.1 client, tiny upstream
//! servers, templates for real replicas, and a look at /proc for left-over processes.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zdd::model::{ProbeSpec, VersionTemplate};

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

/// Processes whose command line mentions `needle` (for example a run directory).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(cmdline);
        }
    }
    found
}

/// The same behaviour, whichever router serves it: these run for the builtin router and for
/// Traefik.
pub mod contract {
    use std::sync::Arc;

    use super::*;
    use zdd::platform::RouterKind;
    use zdd::platform::local::process_groups::ProcessGroups;
    use zdd::platform::local::routers::LocalRouter;
    use zdd_router::{Backend, Endpoint, Matcher, Route, RouteTable, Rule};

    pub struct Running {
        pub router: LocalRouter,
        pub groups: Arc<ProcessGroups>,
        pub dir: tempfile::TempDir,
    }

    impl Running {
        pub fn main(&self) -> String {
            format!("http://{}", self.router.addrs().main)
        }
        pub fn preview(&self) -> String {
            format!("http://{}", self.router.addrs().preview)
        }
        pub async fn stop(mut self) {
            self.router.shutdown().await;
            self.groups.kill_all();
        }
    }

    pub async fn start(kind: RouterKind) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let groups = Arc::new(ProcessGroups::new());
        let router = LocalRouter::start(
            kind,
            "127.0.0.1:0".parse().unwrap(),
            dir.path(),
            groups.clone(),
        )
        .await
        .unwrap_or_else(|err| panic!("cannot start the {kind:?} router: {err}"));
        Running {
            router,
            groups,
            dir,
        }
    }

    pub fn endpoint(pod: &str, version: &str, addr: SocketAddr) -> Endpoint {
        Endpoint {
            pod: pod.into(),
            version: version.into(),
            addr,
        }
    }

    pub fn backend(name: &str, weight: u32, endpoints: Vec<Endpoint>) -> Backend {
        Backend {
            name: name.into(),
            weight,
            endpoints,
        }
    }

    pub fn always(backends: Vec<Backend>) -> Route {
        Route {
            rules: vec![Rule {
                matcher: Matcher::Always,
                backends,
            }],
        }
    }

    pub async fn round_robin_inside_a_version_with_headers(kind: RouterKind) {
        let running = start(kind).await;
        let (a, b) = (upstream("a").await, upstream("b").await);
        let table = RouteTable {
            main: always(vec![backend(
                "v1",
                1,
                vec![endpoint("v1-1", "v1", a), endpoint("v1-2", "v1", b)],
            )]),
            preview: Route::default(),
        };
        running.router.apply(&table).await.unwrap();
        let mut per_pod = BTreeMap::<String, u32>::new();
        for _ in 0..20 {
            let answer = get(&running.main()).await.unwrap();
            assert_eq!(answer.status, 200, "{answer:?}");
            assert_eq!(answer.header("x-zdd-version"), Some("v1"), "{answer:?}");
            let pod = answer.header("x-zdd-pod").unwrap().to_owned();
            // The header names the pod that really answered.
            let expected_body = if pod == "v1-1" { "a" } else { "b" };
            assert_eq!(answer.body, expected_body, "{answer:?}");
            *per_pod.entry(pod).or_default() += 1;
        }
        assert_eq!(per_pod.len(), 2, "{per_pod:?}");
        assert!(
            per_pod.values().all(|n| (6..=14).contains(n)),
            "{per_pod:?}"
        );
        running.stop().await;
    }

    pub async fn weighted_split_between_versions(kind: RouterKind) {
        let running = start(kind).await;
        let (v1, v2) = (upstream("one").await, upstream("two").await);
        let table = RouteTable {
            main: always(vec![
                backend("v1", 3, vec![endpoint("v1-1", "v1", v1)]),
                backend("v2", 1, vec![endpoint("v2-1", "v2", v2)]),
            ]),
            preview: Route::default(),
        };
        running.router.apply(&table).await.unwrap();
        let total = 200;
        let mut v2_answers = 0;
        for _ in 0..total {
            let answer = get(&running.main()).await.unwrap();
            assert_eq!(answer.status, 200, "{answer:?}");
            if answer.header("x-zdd-version") == Some("v2") {
                assert_eq!(answer.body, "two");
                v2_answers += 1;
            }
        }
        // 25% expected; both routers spread weights deterministically, the bounds are loose.
        assert!((30..=70).contains(&v2_answers), "v2: {v2_answers}/{total}");

        // Weight 0 takes nothing.
        let table = RouteTable {
            main: always(vec![
                backend("v1", 0, vec![endpoint("v1-1", "v1", v1)]),
                backend("v2", 5, vec![endpoint("v2-1", "v2", v2)]),
            ]),
            preview: Route::default(),
        };
        running.router.apply(&table).await.unwrap();
        for _ in 0..20 {
            let answer = get(&running.main()).await.unwrap();
            assert_eq!(answer.header("x-zdd-version"), Some("v2"), "{answer:?}");
        }
        running.stop().await;
    }

    pub async fn preview_route_and_failures(kind: RouterKind) {
        let running = start(kind).await;
        let (v1, v2) = (upstream("one").await, upstream("two").await);
        let table = RouteTable {
            main: always(vec![backend("v1", 1, vec![endpoint("v1-1", "v1", v1)])]),
            preview: always(vec![backend("v2", 1, vec![endpoint("v2-1", "v2", v2)])]),
        };
        running.router.apply(&table).await.unwrap();
        for _ in 0..10 {
            let main = get(&running.main()).await.unwrap();
            let preview = get(&running.preview()).await.unwrap();
            assert_eq!((main.status, main.body.as_str()), (200, "one"));
            assert_eq!((preview.status, preview.body.as_str()), (200, "two"));
            assert_eq!(preview.header("x-zdd-version"), Some("v2"));
        }

        // No preview route: 404. A version without endpoints: 503. A refused endpoint: 502,
        // not retried elsewhere.
        let table = RouteTable {
            main: always(vec![
                backend("v1", 1, vec![endpoint("v1-9", "v1", refused_addr())]),
                backend("v2", 1, vec![]),
            ]),
            preview: Route::default(),
        };
        running.router.apply(&table).await.unwrap();
        assert_eq!(get(&running.preview()).await.unwrap().status, 404);
        let mut statuses = BTreeMap::<u16, u32>::new();
        for _ in 0..20 {
            *statuses
                .entry(get(&running.main()).await.unwrap().status)
                .or_default() += 1;
        }
        assert_eq!(statuses.keys().copied().collect::<Vec<_>>(), vec![502, 503]);
        running.stop().await;
    }

    pub async fn header_rule_goes_first(kind: RouterKind) {
        let running = start(kind).await;
        let (v1, v2) = (upstream("one").await, upstream("two").await);
        let table = RouteTable {
            main: Route {
                rules: vec![
                    Rule {
                        matcher: Matcher::Header {
                            name: "X-Canary".into(),
                            value: "yes".into(),
                        },
                        backends: vec![backend("v2", 1, vec![endpoint("v2-1", "v2", v2)])],
                    },
                    Rule {
                        matcher: Matcher::Always,
                        backends: vec![backend("v1", 1, vec![endpoint("v1-1", "v1", v1)])],
                    },
                ],
            },
            preview: Route::default(),
        };
        running.router.apply(&table).await.unwrap();
        for _ in 0..5 {
            let canary = get_with(&running.main(), "/", &[("X-Canary", "yes")])
                .await
                .unwrap();
            assert_eq!(canary.header("x-zdd-version"), Some("v2"), "{canary:?}");
            let other = get_with(&running.main(), "/", &[("X-Canary", "no")])
                .await
                .unwrap();
            assert_eq!(other.header("x-zdd-version"), Some("v1"), "{other:?}");
        }
        running.stop().await;
    }
}

//! The builtin router's upstream connections: a pool per worker shared by all client connections,
//! bounded by the requests in flight, with an idle timeout; connections to endpoints that left
//! the table close; at the open-file limit the router slows down instead of spinning or crashing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use zdd_router::{Backend, BuiltinOptions, BuiltinRouter, Endpoint, Route, RouteTable};

// ---- Helpers ----

/// A keep-alive upstream answering every request with its name; counts its connections.
struct Upstream {
    name: &'static str,
    addr: SocketAddr,
    stats: Arc<Stats>,
}

struct Stats {
    accepted: AtomicUsize,
    open: AtomicUsize,
    requests: AtomicUsize,
    /// While set, each answer waits for a permit of `gate`.
    hold: AtomicBool,
    gate: Semaphore,
}

impl Upstream {
    async fn start(name: &'static str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats {
            accepted: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            hold: AtomicBool::new(false),
            gate: Semaphore::new(0),
        });
        let counting = stats.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counting.accepted.fetch_add(1, Ordering::SeqCst);
                counting.open.fetch_add(1, Ordering::SeqCst);
                let stats = counting.clone();
                tokio::spawn(async move {
                    serve(stream, name, &stats).await;
                    stats.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Upstream { name, addr, stats }
    }

    fn accepted(&self) -> usize {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    fn open(&self) -> usize {
        self.stats.open.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.stats.requests.load(Ordering::SeqCst)
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            pod: self.name.into(),
            version: "v1".into(),
            addr: self.addr,
            node: None,
        }
    }
}

/// Answers request heads (no bodies in these tests) until the peer closes.
async fn serve(mut stream: TcpStream, name: &str, stats: &Stats) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            stats.requests.fetch_add(1, Ordering::SeqCst);
            if stats.hold.load(Ordering::SeqCst) {
                stats.gate.acquire().await.unwrap().forget();
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                name.len()
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
}

fn table(upstreams: &[&Upstream]) -> RouteTable {
    RouteTable {
        main: Route::always(vec![Backend {
            name: "v1".into(),
            weight: 1,
            endpoints: upstreams.iter().map(|u| u.endpoint()).collect(),
        }]),
        preview: Route::default(),
    }
}

async fn router(upstreams: &[&Upstream], options: BuiltinOptions) -> BuiltinRouter {
    let router = BuiltinRouter::start_with_options("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    router.apply(&table(upstreams));
    router
}

type Client = SendRequest<Full<Bytes>>;

/// One keep-alive client connection.
async fn client(addr: SocketAddr) -> Client {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

/// A GET on `client`: status and body.
async fn get(client: &mut Client) -> (u16, String) {
    let exchange = async {
        client.ready().await.unwrap();
        let request = hyper::Request::builder()
            .uri("/")
            .header(hyper::header::HOST, "router.test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("an answer within 10 s")
}

/// Polls `condition` every 20 ms until it holds; panics with `what` after `timeout`.
async fn eventually(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The soft open-file limit of this process, from /proc (no libc needed).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

// ---- The pool ----

/// 1,000 client connections doing requests one after the other through 3 endpoints: the router's
/// upstream connections follow the requests in flight (10 here), not the clients. With an upstream
/// connection kept per client connection and endpoint there would be thousands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_share_a_few_upstream_connections() {
    // Each client costs two descriptors in this process (its end and the router's).
    let clients = open_file_limit()
        .map_or(1000, |limit| limit.saturating_sub(100) / 2)
        .min(1000);
    assert!(clients >= 100, "open-file limit too low for this test");
    let (a, b, c) = tokio::join!(
        Upstream::start("a"),
        Upstream::start("b"),
        Upstream::start("c")
    );
    let mut router = router(&[&a, &b, &c], BuiltinOptions::default()).await;
    let mut senders = Vec::with_capacity(clients);
    for _ in 0..clients {
        senders.push(client(router.addrs().main).await);
    }
    const IN_FLIGHT: usize = 10;
    let mut tasks = tokio::task::JoinSet::new();
    let per_task = clients.div_ceil(IN_FLIGHT);
    while !senders.is_empty() {
        let mut mine: Vec<Client> = senders.drain(..per_task.min(senders.len())).collect();
        tasks.spawn(async move {
            // Three rounds: each client's requests go to different endpoints (round robin).
            for _ in 0..3 {
                for sender in &mut mine {
                    let (status, _) = get(sender).await;
                    assert_eq!(status, 200);
                }
            }
            mine
        });
    }
    let mut kept = Vec::new();
    while let Some(done) = tasks.join_next().await {
        kept.push(done.unwrap());
    }
    let requests = a.requests() + b.requests() + c.requests();
    assert_eq!(requests, 3 * clients);
    let accepted = a.accepted() + b.accepted() + c.accepted();
    eprintln!("{accepted} upstream connections for {clients} clients");
    // At most 10 requests in flight: about 10 connections per endpoint at most, whatever the
    // machine's timing; a generous bound still far from one per client.
    assert!(
        accepted <= 3 * 2 * IN_FLIGHT,
        "{accepted} upstream connections for {clients} clients and {IN_FLIGHT} requests in flight"
    );
    router.shutdown().await;
}

/// 400 clients sending back to back through one endpoint: never more upstream connections than
/// requests in flight. Their connections come back in bursts; a cap on the idle ones below the
/// requests in flight closed them, and the next burst connected again (3,600 to 4,200 upstream
/// connections for these 8,000 requests with a cap of 64; 3,231 for 2,000 wrk clients).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_requests_open_no_more_connections_than_are_in_flight() {
    const CLIENTS: usize = 400;
    const ROUNDS: usize = 20;
    let a = Upstream::start("a").await;
    let mut router = router(&[&a], BuiltinOptions::default()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let mut sender = client(router.addrs().main).await;
        tasks.spawn(async move {
            for _ in 0..ROUNDS {
                assert_eq!(get(&mut sender).await.0, 200);
            }
            sender
        });
    }
    let mut kept = Vec::new();
    while let Some(done) = tasks.join_next().await {
        kept.push(done.unwrap());
    }
    assert_eq!(a.requests(), CLIENTS * ROUNDS);
    assert!(
        a.accepted() <= CLIENTS,
        "{} upstream connections for {} requests, at most {CLIENTS} in flight",
        a.accepted(),
        CLIENTS * ROUNDS
    );
    router.shutdown().await;
}

/// An idle upstream connection is closed after the idle timeout; until then it is reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_close_after_the_idle_timeout() {
    let upstream = Upstream::start("a").await;
    let options = BuiltinOptions {
        upstream_idle_timeout: Duration::from_millis(500),
        ..BuiltinOptions::default()
    };
    let mut router = router(&[&upstream], options).await;
    let mut sender = client(router.addrs().main).await;
    for _ in 0..3 {
        assert_eq!(get(&mut sender).await, (200, "a".into()));
    }
    eventually(
        "the idle upstream connection is closed",
        Duration::from_secs(10),
        || upstream.open() == 0,
    )
    .await;
    assert_eq!(upstream.accepted(), 1, "reused before the timeout");
    // The client connection stays; its next request gets a new upstream connection.
    assert_eq!(get(&mut sender).await, (200, "a".into()));
    assert_eq!(upstream.accepted(), 2);
    router.shutdown().await;
}

/// When an endpoint leaves the table, its idle connections close at once and a connection with a
/// request in flight closes when that answer is done, although the client connections stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_an_endpoint_that_left_the_table_close() {
    let (a, b) = tokio::join!(Upstream::start("a"), Upstream::start("b"));
    // Long enough that only the table change can close them.
    let options = BuiltinOptions {
        upstream_idle_timeout: Duration::from_secs(600),
        ..BuiltinOptions::default()
    };
    let mut router = router(&[&a], options).await;
    let main = router.addrs().main;
    let (mut first, mut second) = (client(main).await, client(main).await);
    // Two requests at once: two upstream connections, both idle afterwards.
    a.stats.hold.store(true, Ordering::SeqCst);
    let both = tokio::spawn(async move {
        let answers = tokio::join!(get(&mut first), get(&mut second));
        (answers, first, second)
    });
    eventually("two requests held", Duration::from_secs(10), || {
        a.requests() == 2
    })
    .await;
    a.stats.gate.add_permits(2);
    let ((one, two), mut first, _second) = both.await.unwrap();
    assert_eq!((one.0, two.0), (200, 200));
    assert_eq!(a.open(), 2);
    // One of them carries a request that is held; the other stays idle.
    let in_flight = tokio::spawn(async move { (get(&mut first).await, first) });
    eventually("the third request held", Duration::from_secs(10), || {
        a.requests() == 3
    })
    .await;
    router.apply(&table(&[&b]));
    eventually(
        "the idle connection to the removed endpoint closes",
        Duration::from_secs(10),
        || a.open() == 1,
    )
    .await;
    a.stats.gate.add_permits(1);
    let (answer, mut first) = in_flight.await.unwrap();
    assert_eq!(answer, (200, "a".into()), "the request in flight completes");
    eventually(
        "the connection whose answer ended closes",
        Duration::from_secs(10),
        || a.open() == 0,
    )
    .await;
    assert_eq!(get(&mut first).await, (200, "b".into()));
    router.shutdown().await;
}

// ---- The open-file limit ----

/// Reads a child process's CPU time (user + system, in clock ticks).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after `(comm)`: utime and stime are the 12th and 13th.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Writes a GET on `stream`, then reads one answer's head: its status, or `None` when the
/// connection ends first or nothing comes within `wait`.
async fn raw_get(stream: &mut TcpStream, wait: Duration) -> Option<u16> {
    let exchange = async {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: router.test\r\n\r\n")
            .await
            .ok()?;
        let mut seen = Vec::new();
        let mut chunk = [0u8; 1024];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(n) if n > 0 => seen.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
        let text = String::from_utf8_lossy(&seen);
        text.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(wait, exchange).await.ok().flatten()
}

/// At its open-file limit (64 here, lowered in a process of its own) with 150 clients, the router
/// serves the clients it could accept, leaves the others in the backlog without spinning (its
/// accepts back off), warns at most once a second with a count, and serves the others once
/// descriptors free up.
#[test]
fn at_the_open_file_limit_the_router_backs_off_and_recovers() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let upstream = Upstream::start("a").await;
        let exe = std::env::current_exe().unwrap();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n 64 && exec "$0" "$@""#)
            .arg(exe)
            .args([
                "--exact",
                "router_at_a_low_open_file_limit",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("ZDD_TEST_UPSTREAM", upstream.addr.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let stdout = child.stdout.take().unwrap();
        let (found, router_addr) = std::sync::mpsc::channel();
        // Reads the child's stdout to its end (a closed pipe would fail the child's last writes).
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // After libtest's `test NAME ... ` on the same line.
                if let Some((_, addr)) = line.split_once("router: ") {
                    let _ = found.send(addr.trim().parse::<SocketAddr>().unwrap());
                }
            }
        });
        let main = router_addr
            .recv_timeout(Duration::from_secs(30))
            .expect("the child reports its router");

        // 150 clients, each with one GET, holding its connection until released.
        const CLIENTS: usize = 150;
        let answered = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..CLIENTS {
            let mut stream = TcpStream::connect(main).await.unwrap();
            let (answered, mut released) = (answered.clone(), released.clone());
            clients.spawn(async move {
                let status = raw_get(&mut stream, Duration::from_secs(60)).await;
                answered.fetch_add(1, Ordering::SeqCst);
                let _ = released.wait_for(|released| *released).await;
                status
            });
        }
        // Some are served; the rest wait in the backlog. Wait until that settles.
        let mut last = (0, Instant::now());
        eventually("the answers stop coming", Duration::from_secs(20), || {
            let now = answered.load(Ordering::SeqCst);
            if now != last.0 {
                last = (now, Instant::now());
            }
            now > 0 && last.1.elapsed() > Duration::from_millis(500)
        })
        .await;
        let served_first = answered.load(Ordering::SeqCst);
        assert!(served_first < CLIENTS, "the limit did not bite");
        let pid = child.id();
        let before = cpu_ticks(pid);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let used = cpu_ticks(pid) - before;
        // A thread spinning on accept for 1.5 s uses about 150 ticks.
        assert!(used <= 30, "{used} ticks in 1.5 s with clients waiting");

        // The served clients leave: the waiting ones get in and are answered.
        release.send(true).unwrap();
        let mut statuses = Vec::new();
        while let Some(done) = tokio::time::timeout(Duration::from_secs(90), clients.join_next())
            .await
            .expect("every client done within 90 s")
        {
            statuses.push(done.unwrap());
        }
        assert!(
            statuses.iter().all(|s| s.is_some()),
            "every client got an answer: {statuses:?}"
        );
        let ok = statuses.iter().filter(|s| **s == Some(200)).count();
        eprintln!(
            "{served_first} served at first, {used} ticks while at the limit, {ok} of {CLIENTS} ok"
        );
        assert!(ok >= served_first, "{statuses:?}");
        // Still answering, now that the load is gone.
        let mut late = TcpStream::connect(main).await.unwrap();
        assert_eq!(raw_get(&mut late, Duration::from_secs(10)).await, Some(200));
        drop(late);

        drop(child.stdin.take());
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let seconds = started.elapsed().as_secs();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let warnings: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("router accept failed"))
            .collect();
        assert!(!warnings.is_empty(), "no warning: {stderr}");
        assert!(
            warnings.len() as u64 <= seconds + 1,
            "{} warnings in {seconds} s: {stderr}",
            warnings.len()
        );
        assert!(
            warnings
                .iter()
                .all(|w| w.contains("since the last warning")),
            "{stderr}"
        );
    });
}

#[ignore = "run by at_the_open_file_limit_the_router_backs_off_and_recovers, with a low limit"]
#[test]
fn router_at_a_low_open_file_limit() {
    tracing::subscriber::set_global_default(stderr_warnings::Warnings).unwrap();
    let upstream: SocketAddr = std::env::var("ZDD_TEST_UPSTREAM").unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut router = BuiltinRouter::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        router.apply(&RouteTable {
            main: Route::always(vec![Backend {
                name: "v1".into(),
                weight: 1,
                endpoints: vec![Endpoint {
                    pod: "a".into(),
                    version: "v1".into(),
                    addr: upstream,
                    node: None,
                }],
            }]),
            preview: Route::default(),
        });
        println!("router: {}", router.addrs().main);
        // Until the parent closes stdin.
        tokio::task::spawn_blocking(|| {
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        })
        .await
        .unwrap();
        router.shutdown().await;
    });
}

/// Warnings and errors to stderr, one line each (the router logs through `tracing`).
mod stderr_warnings {
    use std::fmt::Write;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    pub struct Warnings;

    struct Line(String);

    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, " {value:?}");
            } else {
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
    }

    impl Subscriber for Warnings {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            *metadata.level() <= Level::WARN
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut line = Line(event.metadata().level().to_string());
            event.record(&mut line);
            eprintln!("{}", line.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

//! An upstream that closes keep-alive connections (idle timeout, end of a drain), even as a
//! request arrives, costs no GET: the builtin router sends again a request that got no byte of an
//! answer on a reused connection, if it may go twice. A POST, a request whose body went out, or
//! one that got part of an answer is never sent twice.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zdd_router::{Backend, BuiltinRouter, Endpoint, Route, RouteTable};

// ---- A scripted upstream ----

/// What the upstream does with a request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    /// Answers `ok`, keeps the connection.
    Answer,
    /// Answers `ok`, then closes.
    AnswerThenClose,
    /// Reads the request, then closes without a byte of answer (a FIN).
    CloseOnArrival,
    /// Closes as the request arrives, without reading it (unread bytes: a reset).
    ResetOnArrival,
    /// Writes the start of an answer, then closes.
    PartialThenClose,
}

/// What it does: by connection (from 0, in accept order) and request on it (from 0).
type Script = Arc<dyn Fn(usize, usize) -> Step + Send + Sync>;

struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Every request read, as `METHOD id` (the client's `X-Id`), in arrival order.
    seen: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    async fn start(script: Script) -> Upstream {
        Self::start_with_idle_close(script, None).await
    }

    /// With `idle_close`, a connection idle for a random time below it is closed too.
    async fn start_with_idle_close(script: Script, idle_close: Option<Duration>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (counter, log) = (accepted.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let connection = counter.fetch_add(1, Ordering::SeqCst);
                let (script, log) = (script.clone(), log.clone());
                tokio::spawn(serve(stream, connection, script, log, idle_close));
            }
        });
        Upstream {
            addr,
            accepted,
            seen,
        }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

async fn serve(
    mut stream: TcpStream,
    connection: usize,
    script: Script,
    seen: Arc<Mutex<Vec<String>>>,
    idle_close: Option<Duration>,
) {
    let mut random = Random::new(connection as u64);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for request in 0.. {
        let step = script(connection, request);
        if request > 0
            && let Some(most) = idle_close
        {
            // Closes if no request comes within a random idle time (maybe as one arrives).
            let idle = most.mul_f64(random.fraction());
            if buf.is_empty() && tokio::time::timeout(idle, stream.readable()).await.is_err() {
                return;
            }
        }
        if step == Step::ResetOnArrival {
            let _ = stream.readable().await;
            return;
        }
        // One request: its head, then its body (`Content-Length` only).
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let header = |name: &str| {
            head.lines()
                .find_map(|line| line.strip_prefix(name))
                .map(|value| value.trim().to_owned())
        };
        let length: usize = header("content-length:").map_or(0, |v| v.parse().unwrap());
        while buf.len() < head_end + length {
            match stream.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        let method = head.split_whitespace().next().unwrap_or("").to_uppercase();
        let id = header("x-id:").unwrap_or_default();
        seen.lock().unwrap().push(format!("{method} {id}"));
        buf.drain(..head_end + length);
        match step {
            Step::Answer => {
                if stream.write_all(OK).await.is_err() {
                    return;
                }
            }
            Step::AnswerThenClose => {
                let _ = stream.write_all(OK).await;
                return;
            }
            Step::CloseOnArrival | Step::ResetOnArrival => return,
            Step::PartialThenClose => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Le").await;
                return;
            }
        }
    }
}

/// xorshift: enough randomness for a test, no dependency.
struct Random(u64);

impl Random {
    fn new(seed: u64) -> Random {
        static NEXT: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Random(NEXT.fetch_add(seed | 1, Ordering::Relaxed) ^ u64::from(nanos) | 1)
    }

    fn fraction(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ---- Router and client ----

async fn router_to(addr: SocketAddr) -> BuiltinRouter {
    let router = BuiltinRouter::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    router.apply(&RouteTable {
        main: Route::always(vec![Backend {
            name: "v1".into(),
            weight: 1,
            endpoints: vec![Endpoint {
                pod: "v1-1".into(),
                version: "v1".into(),
                addr,
                node: None,
            }],
        }]),
        preview: Route::default(),
    });
    router
}

type Client = SendRequest<Full<Bytes>>;

async fn client(addr: SocketAddr) -> Client {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

/// `method` with `X-Id: id` and `body` on `client`; the status (the body is read whole).
async fn send(client: &mut Client, method: &str, id: usize, body: &'static [u8]) -> u16 {
    let exchange = async {
        client.ready().await.unwrap();
        let request = hyper::Request::builder()
            .method(method)
            .uri("/")
            .header(hyper::header::HOST, "router.test")
            .header("x-id", id.to_string())
            .body(Full::new(Bytes::from_static(body)))
            .unwrap();
        let response = client.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        response.into_body().collect().await.unwrap();
        status
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("an answer within 10 s")
}

// ---- One request at a time, each case made to happen ----

/// The second request on the first connection meets `step`; everything else is answered.
fn second_request(step: Step) -> Script {
    Arc::new(move |connection, request| match (connection, request) {
        (0, 1) => step,
        _ => Step::Answer,
    })
}

/// A GET on a reused connection that the upstream closes (FIN or reset) as the GET arrives goes
/// again on a new connection: the client sees 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_on_a_connection_closed_as_it_arrives_goes_again() {
    for step in [Step::CloseOnArrival, Step::ResetOnArrival] {
        let upstream = Upstream::start(second_request(step)).await;
        let mut router = router_to(upstream.addr).await;
        let mut client = client(router.addrs().main).await;
        assert_eq!(send(&mut client, "GET", 1, b"").await, 200);
        assert_eq!(send(&mut client, "GET", 2, b"").await, 200, "{step:?}");
        assert_eq!(send(&mut client, "GET", 3, b"").await, 200);
        assert_eq!(upstream.accepted(), 2, "{step:?}");
        let seen = upstream.seen();
        let gets_2 = seen.iter().filter(|s| *s == "GET 2").count();
        // A reset leaves the first unread: it is seen on the new connection only.
        let expected = if step == Step::CloseOnArrival { 2 } else { 1 };
        assert_eq!(gets_2, expected, "{step:?}: {seen:?}");
        router.shutdown().await;
    }
}

/// A POST, or a PUT whose body went out, on a reused connection that the upstream closes as the
/// request arrives: a 502 for the client, and the upstream saw it at most once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_or_a_put_with_a_body_is_never_sent_twice() {
    let cases: [(&str, &'static [u8], Step); 4] = [
        ("POST", b"", Step::CloseOnArrival),
        ("POST", b"payload", Step::CloseOnArrival),
        ("PUT", b"payload", Step::CloseOnArrival),
        ("POST", b"payload", Step::ResetOnArrival),
    ];
    for (method, body, step) in cases {
        let upstream = Upstream::start(second_request(step)).await;
        let mut router = router_to(upstream.addr).await;
        let mut client = client(router.addrs().main).await;
        assert_eq!(send(&mut client, "GET", 1, b"").await, 200);
        let case = format!("{method} with {} bytes, {step:?}", body.len());
        assert_eq!(send(&mut client, method, 2, body).await, 502, "{case}");
        let seen = upstream.seen();
        let sent = seen.iter().filter(|s| **s == format!("{method} 2")).count();
        assert!(sent <= 1, "{case}: {seen:?}");
        assert_eq!(upstream.accepted(), 1, "{case}: no new connection for it");
        // The next request gets a new connection.
        assert_eq!(send(&mut client, "GET", 3, b"").await, 200);
        router.shutdown().await;
    }
}

/// A GET that got the start of an answer before the upstream closed is not sent again: 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_that_got_part_of_an_answer_is_not_sent_again() {
    let upstream = Upstream::start(second_request(Step::PartialThenClose)).await;
    let mut router = router_to(upstream.addr).await;
    let mut client = client(router.addrs().main).await;
    assert_eq!(send(&mut client, "GET", 1, b"").await, 200);
    assert_eq!(send(&mut client, "GET", 2, b"").await, 502);
    let seen = upstream.seen();
    assert_eq!(seen, ["GET 1", "GET 2"]);
    router.shutdown().await;
}

// ---- Under load, closes at random moments ----

/// Each connection's first request is answered (a new connection is never idle); later ones meet
/// a close as they arrive one time in five; one answer in ten closes its connection after it; and
/// a connection idle for a random time under 2 ms is closed.
fn random_closes() -> Script {
    let random = Arc::new(Mutex::new(Random::new(7)));
    Arc::new(move |_, request| {
        if request == 0 {
            return Step::Answer;
        }
        let draw = random.lock().unwrap().fraction();
        match draw {
            d if d < 0.1 => Step::CloseOnArrival,
            d if d < 0.2 => Step::ResetOnArrival,
            d if d < 0.3 => Step::AnswerThenClose,
            _ => Step::Answer,
        }
    })
}

/// Sequential and concurrent GETs through an upstream that closes keep-alive connections at
/// random moments: not one 502. POSTs among them may fail, but none reaches the upstream twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_closes_cost_no_get_and_never_send_a_post_twice() {
    let upstream =
        Upstream::start_with_idle_close(random_closes(), Some(Duration::from_millis(2))).await;
    let mut router = router_to(upstream.addr).await;
    let main = router.addrs().main;

    let mut one = client(main).await;
    for id in 0..300 {
        assert_eq!(
            send(&mut one, "GET", id, b"").await,
            200,
            "sequential GET {id}"
        );
    }

    const CLIENTS: usize = 8;
    const EACH: usize = 100;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        tasks.spawn(async move {
            let mut client = client(main).await;
            let mut statuses = Vec::new();
            for i in 0..EACH {
                let id = 1000 + c * EACH + i;
                // Every fifth a POST with a body.
                let (method, body): (&str, &'static [u8]) = if i % 5 == 4 {
                    ("POST", b"payload")
                } else {
                    ("GET", b"")
                };
                statuses.push((method, id, send(&mut client, method, id, body).await));
            }
            statuses
        });
    }
    let mut statuses = Vec::new();
    while let Some(done) = tasks.join_next().await {
        statuses.extend(done.unwrap());
    }
    let failed_gets: Vec<_> = statuses
        .iter()
        .filter(|(method, _, status)| *method == "GET" && *status != 200)
        .collect();
    assert!(failed_gets.is_empty(), "{failed_gets:?}");
    let seen = upstream.seen();
    for (method, id, status) in statuses.iter().filter(|(m, _, _)| *m == "POST") {
        let times = seen
            .iter()
            .filter(|s| **s == format!("{method} {id}"))
            .count();
        assert!(times <= 1, "POST {id} reached the upstream {times} times");
        assert!([200, 502].contains(status), "POST {id}: {status}");
    }
    // The closes did meet requests: some GETs reached the upstream twice.
    let gets = seen.iter().filter(|s| s.starts_with("GET")).count();
    let sent_gets = 300 + statuses.iter().filter(|(m, _, _)| *m == "GET").count();
    let failed_posts = statuses.iter().filter(|(_, _, s)| *s != 200).count();
    eprintln!(
        "{sent_gets} GETs sent, {gets} reached the upstream; {failed_posts} POSTs failed; \
         {} upstream connections",
        upstream.accepted()
    );
    assert!(
        gets > sent_gets,
        "no GET went twice: the test missed its race"
    );
    router.shutdown().await;
}

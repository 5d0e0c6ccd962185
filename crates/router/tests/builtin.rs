//! The builtin router on its own, against tiny upstreams on loopback: connection reuse, bodies,
//! edge cases a scripted upstream writes byte for byte, shutdown, idle threads. The contract it
//! shares with Traefik runs in zdd's tests, where the local platform runs both.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use zdd_router::{Backend, BuiltinRouter, Endpoint, Route, RouteTable};
use zdd_test_support::http::get;
use zdd_test_support::poll::eventually;
use zdd_test_support::process::{run_in_own_process, thread_cpu_ticks};
use zdd_test_support::upstream::{Step, TestServer, scripted_upstream};

fn endpoint(pod: &str, addr: SocketAddr) -> Endpoint {
    Endpoint {
        pod: pod.into(),
        version: "v1".into(),
        addr,
        node: None,
    }
}

/// A builtin router with `threads` workers whose main route sends every request to `endpoints`
/// (one version, v1).
async fn router_with(threads: usize, endpoints: Vec<Endpoint>) -> BuiltinRouter {
    let router = BuiltinRouter::start_with_threads("127.0.0.1:0".parse().unwrap(), threads)
        .await
        .unwrap();
    router.apply(&RouteTable {
        main: Route::always(vec![Backend {
            name: "v1".into(),
            weight: 1,
            endpoints,
        }]),
        preview: Route::default(),
    });
    router
}

/// A builtin router (one worker) whose main route sends every request to `addr` (pod v1-1).
async fn router_to(addr: SocketAddr) -> BuiltinRouter {
    router_with(1, vec![endpoint("v1-1", addr)]).await
}

fn main_url(router: &BuiltinRouter) -> String {
    format!("http://{}", router.addrs().main)
}

/// A client's keep-alive connection reuses the router's upstream connection instead of opening
/// one per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_reuses_upstream_connections() {
    let upstream = TestServer::answering("counted").await;
    let mut router = router_to(upstream.addr).await;
    // One client connection (a pooling client may open a second one when its first is not back
    // in its pool yet; the router then rightly opens a second upstream connection too).
    let mut client = client_connection(router.addrs().main).await;
    for _ in 0..50 {
        let (status, _, body) = send(&mut client, "GET", Vec::new()).await;
        assert_eq!((status, body.as_slice()), (200, b"counted".as_slice()));
    }
    assert_eq!(upstream.connections(), 1);
    router.shutdown().await;
}

/// A replica that closes every connection after its answer (as a draining one does) costs no
/// failed request: the next request goes on a new upstream connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_connections_causes_no_failure() {
    let upstream = TestServer::answering("counted").await;
    upstream
        .behaviour
        .connection_close
        .store(true, Ordering::SeqCst);
    let mut router = router_to(upstream.addr).await;
    let statuses = keep_alive_statuses(&main_url(&router), 30).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(upstream.connections(), 30);
    router.shutdown().await;
}

/// `count` GETs on one keep-alive connection; the statuses, in order.
async fn keep_alive_statuses(url: &str, count: usize) -> Vec<u16> {
    use hyper_util::client::legacy::Client;
    let client: Client<_, http_body_util::Empty<Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .build_http();
    let mut statuses = Vec::new();
    for _ in 0..count {
        let response = client.get(url.parse().unwrap()).await.unwrap();
        statuses.push(response.status().as_u16());
        // Read the body so the connection is free for the next request.
        response.into_body().collect().await.unwrap();
    }
    statuses
}

/// An upstream that answers with the request's body (streamed back, so chunked) and reports the
/// `Host` it got in `X-Seen-Host`; counts its connections.
async fn echo_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: hyper::Request<_>| async move {
                    let host = request
                        .headers()
                        .get(hyper::header::HOST)
                        .cloned()
                        .unwrap_or(hyper::header::HeaderValue::from_static("none"));
                    let mut response = hyper::Response::new(request.into_body());
                    response.headers_mut().insert("x-seen-host", host);
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, accepted)
}

/// One client connection to `addr` (HTTP/1.1 keep-alive).
async fn client_connection(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

/// A request on `sender`; status, `X-Zdd-Pod` and body.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    body: Vec<u8>,
) -> (u16, String, Vec<u8>) {
    sender.ready().await.unwrap();
    let request = hyper::Request::builder()
        .method(method)
        .uri("/echo")
        .header(hyper::header::HOST, "router.test")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
        .await
        .expect("answer within 5 s")
        .unwrap();
    let status = response.status().as_u16();
    let pod = response
        .headers()
        .get("x-zdd-pod")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, pod, body)
}

/// Request bodies go up and answer bodies come down whole, on a reused upstream connection, and
/// the client's `Host` is forwarded as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_answer_bodies_stream_through() {
    let (addr, accepted) = echo_upstream().await;
    let mut router = router_to(addr).await;
    let mut client = client_connection(router.addrs().main).await;
    for size in [0usize, 3, 100_000, 1_000_000] {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let (status, pod, echoed) = send(&mut client, "POST", body.clone()).await;
        assert_eq!((status, pod.as_str()), (200, "v1-1"));
        assert!(
            echoed == body,
            "{size} bytes sent, {} came back",
            echoed.len()
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    router.shutdown().await;
}

/// An HTTP/1.0 request without `Host` reaches the upstream (spoken to in HTTP/1.1, which needs a
/// `Host`) with the endpoint's address as `Host`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_request_without_host_gets_the_endpoints_address() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, _) = echo_upstream().await;
    let mut router = router_to(addr).await;
    let mut stream = tokio::net::TcpStream::connect(router.addrs().main)
        .await
        .unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .expect("the router closes an HTTP/1.0 connection after its answer")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(text.starts_with("http/1.0 200"), "{text}");
    assert!(text.contains(&format!("x-seen-host: {addr}")), "{text}");
    router.shutdown().await;
}

/// The endpoint is chosen per request even on one client connection (round robin goes on), and
/// that connection keeps one upstream connection per endpoint instead of opening new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_per_request_on_one_client_connection() {
    let (first, first_accepted) = echo_upstream().await;
    let (second, second_accepted) = echo_upstream().await;
    let mut router = router_with(1, vec![endpoint("v1-1", first), endpoint("v1-2", second)]).await;
    let mut client = client_connection(router.addrs().main).await;
    let mut pods = Vec::new();
    for _ in 0..40 {
        let (status, pod, _) = send(&mut client, "GET", Vec::new()).await;
        assert_eq!(status, 200);
        pods.push(pod);
    }
    assert!(
        pods.windows(2).all(|pair| pair[0] != pair[1]),
        "no strict alternation: {pods:?}"
    );
    assert_eq!(first_accepted.load(Ordering::SeqCst), 1);
    assert_eq!(second_accepted.load(Ordering::SeqCst), 1);
    router.shutdown().await;
}

/// Client connections that come one after the other reuse the upstream connections the earlier
/// ones left idle (the worker's pool) rather than opening one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_client_connections_reuse_idle_upstream_connections() {
    let (addr, accepted) = echo_upstream().await;
    let mut router = router_to(addr).await;
    const CLIENTS: usize = 20;
    for _ in 0..CLIENTS {
        let answer = get(&main_url(&router)).await.unwrap();
        assert_eq!(answer.status, 200);
    }
    let opened = accepted.load(Ordering::SeqCst);
    // Each `get` closes its connection before the next starts; the router may not have noticed
    // every close in time on a busy machine, so only most must be reused.
    assert!(
        opened <= CLIENTS / 2,
        "{opened} upstream connections for {CLIENTS} clients"
    );
    router.shutdown().await;
}

/// Several workers share the entry points (SO_REUSEPORT) and serve the same table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_share_the_ports() {
    let upstream = TestServer::answering("shared").await;
    let mut router = router_with(3, vec![endpoint("v1-1", upstream.addr)]).await;
    let main = main_url(&router);
    for _ in 0..30 {
        let answer = get(&main).await.unwrap();
        assert_eq!((answer.status, answer.body.as_str()), (200, "shared"));
    }
    router.shutdown().await;
    assert!(get(&main).await.is_err(), "still answering after shutdown");
}

// ---- Edge cases: a scripted upstream writes the exact bytes each case needs. ----

const FRESH: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh";

/// A GET on `sender`: the status and the whole body, or the error that cut the body short.
async fn get_body(sender: &mut SendRequest<Full<Bytes>>) -> (u16, Result<Vec<u8>, hyper::Error>) {
    let exchange = async {
        sender.ready().await.unwrap();
        let request = hyper::Request::builder()
            .uri("/")
            .header(hyper::header::HOST, "router.test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|body| body.to_bytes().to_vec());
        (status, body)
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .expect("an answer (or its end) within 5 s")
}

/// An answer the upstream cuts short (fewer bytes than its `Content-Length`, or a chunked body
/// without its last chunk) reaches the client cut short too: never as a complete answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_the_upstream_cuts_short_reaches_the_client_cut_short() {
    let length: fn(usize, usize) -> Step =
        |_, _| Step::AnswerAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
    let chunked: fn(usize, usize) -> Step = |_, _| {
        Step::AnswerAndClose(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    };
    for script in [length, chunked] {
        let upstream = scripted_upstream(script).await;
        let mut router = router_to(upstream.addr).await;
        let mut client = client_connection(router.addrs().main).await;
        let (status, body) = get_body(&mut client).await;
        assert_eq!(status, 200, "the head went out before the body broke");
        assert!(body.is_err(), "a cut answer looks complete: {body:?}");
        router.shutdown().await;
    }
}

/// An upstream that takes a GET on a reused connection and closes without answering a byte: the
/// GET is sent once more, on a new connection (it is idempotent and nothing of an answer came, as
/// nginx and HAProxy do), and the client never sees the close. (A POST is never resent:
/// tests/upstream_retry.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_lost_to_an_upstream_close_on_a_reused_connection_is_sent_once_more() {
    let upstream = scripted_upstream(|connection, request| match (connection, request) {
        (0, 0) => Step::Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"),
        (0, _) => Step::AnswerAndClose(b""),
        _ => Step::Answer(FRESH),
    })
    .await;
    let mut router = router_to(upstream.addr).await;
    let mut client = client_connection(router.addrs().main).await;
    let (status, body) = get_body(&mut client).await;
    assert_eq!((status, body.unwrap()), (200, b"first".to_vec()));
    for _ in 0..2 {
        let (status, body) = get_body(&mut client).await;
        assert_eq!((status, body.unwrap()), (200, b"fresh".to_vec()));
    }
    // The first connection, closed under the second GET, and the one that answered since.
    assert_eq!(upstream.accepted.load(Ordering::SeqCst), 2);
    router.shutdown().await;
}

/// Bytes an upstream sends after its answer (here a whole second answer nobody asked for) are
/// never delivered as the answer to the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_an_upstream_answer_never_answer_the_next_request() {
    let upstream = scripted_upstream(|connection, request| match (connection, request) {
        (0, 0) => Step::Answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\
              HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale",
        ),
        _ => Step::Answer(FRESH),
    })
    .await;
    let mut router = router_to(upstream.addr).await;
    let mut client = client_connection(router.addrs().main).await;
    let (status, body) = get_body(&mut client).await;
    assert_eq!((status, body.unwrap()), (200, b"ok".to_vec()));
    for _ in 0..3 {
        let (status, body) = get_body(&mut client).await;
        assert_eq!((status, body.unwrap()), (200, b"fresh".to_vec()));
    }
    router.shutdown().await;
}

/// A client that goes away in the middle of a long answer: the upstream connection, whose answer
/// was not read to its end, is closed, not handed to the next client (who would wait for an
/// answer that never comes, or get the rest of the old one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_read_upstream_connection_is_closed_not_reused() {
    let upstream = scripted_upstream(|connection, _| match connection {
        0 => Step::AnswerAndHold(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial"),
        _ => Step::Answer(FRESH),
    })
    .await;
    let mut router = router_to(upstream.addr).await;
    {
        let stream = tokio::net::TcpStream::connect(router.addrs().main)
            .await
            .unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        let connection = tokio::spawn(connection);
        let request = hyper::Request::builder()
            .uri("/")
            .header(hyper::header::HOST, "router.test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        // Gone with most of the body unread.
        connection.abort();
    }
    for _ in 0..3 {
        let mut client = client_connection(router.addrs().main).await;
        let (status, body) = get_body(&mut client).await;
        assert_eq!((status, body.unwrap()), (200, b"fresh".to_vec()));
    }
    eventually(
        "the router closes the half-read upstream connection",
        Duration::from_secs(5),
        || async { upstream.ended.load(Ordering::SeqCst) >= 1 },
    )
    .await;
    router.shutdown().await;
}

/// After shutdown no connection is left: every upstream connection and every client connection
/// the router held (idle keep-alive ones included) is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_client_and_upstream_connection() {
    let upstream = scripted_upstream(|_, _| Step::Answer(FRESH)).await;
    let mut router = router_to(upstream.addr).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = client_connection(router.addrs().main).await;
        for _ in 0..2 {
            let (status, _) = get_body(&mut client).await;
            assert_eq!(status, 200);
        }
        clients.push(client);
    }
    let accepted = upstream.accepted.load(Ordering::SeqCst);
    assert!(accepted >= 1);
    router.shutdown().await;
    eventually(
        "every upstream connection closed",
        Duration::from_secs(5),
        || async { upstream.ended.load(Ordering::SeqCst) == accepted },
    )
    .await;
    eventually(
        "every client connection closed",
        Duration::from_secs(5),
        || async { clients.iter().all(|client| client.is_closed()) },
    )
    .await;
}

/// The busy polling after traffic is bounded: an idle router's threads sleep. Measured in a
/// process of its own, where the only router threads are this router's (other tests' routers may
/// be busy in this one).
#[test]
fn an_idle_router_spends_no_cpu() {
    run_in_own_process(module_path!(), "idle_router_cpu_in_a_process_of_its_own");
}

#[ignore = "run by an_idle_router_spends_no_cpu in a process of its own"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_router_cpu_in_a_process_of_its_own() {
    let upstream = scripted_upstream(|_, _| Step::Answer(FRESH)).await;
    let mut router = router_with(2, vec![endpoint("v1-1", upstream.addr)]).await;
    // Traffic on kept-open client connections (likely on both threads), then nothing.
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut client = client_connection(router.addrs().main).await;
        for _ in 0..10 {
            let (status, _) = get_body(&mut client).await;
            assert_eq!(status, 200);
        }
        clients.push(client);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = thread_cpu_ticks("zdd-router");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let end = thread_cpu_ticks("zdd-router");
    assert_eq!(start.len(), 2, "the router's threads: {start:?}");
    // A thread spinning for the whole second uses about 100 ticks.
    let used: Vec<u64> = start.iter().map(|(tid, t)| end[tid] - t).collect();
    assert!(
        used.iter().all(|ticks| *ticks <= 10),
        "ticks in 1 s of idleness per router thread: {used:?}"
    );
    router.shutdown().await;
}

/// Headers that an upstream's `Connection` header names are hop-by-hop (RFC 9110, 7.6.1): the
/// router drops them with `Connection` itself; the others pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_named_by_connection_are_not_forwarded() {
    let upstream = scripted_upstream(|_, _| {
        Step::Answer(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\n\
              X-End: kept\r\nContent-Length: 5\r\n\r\nfresh",
        )
    })
    .await;
    let mut router = router_to(upstream.addr).await;
    let answer = get(&main_url(&router)).await.unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "fresh"));
    assert_eq!(answer.header("x-end"), Some("kept"));
    assert_eq!(answer.header("x-hop"), None, "{:?}", answer.headers);
    router.shutdown().await;
}

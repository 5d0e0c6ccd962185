//! The builtin router against tiny upstreams on loopback.

mod router_support;

use router_support::contract;
use zdd::platform::local::RouterKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_inside_a_version_with_headers() {
    contract::round_robin_inside_a_version_with_headers(RouterKind::Builtin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_between_versions() {
    contract::weighted_split_between_versions(RouterKind::Builtin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_route_and_failures() {
    contract::preview_route_and_failures(RouterKind::Builtin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_rule_goes_first() {
    contract::header_rule_goes_first(RouterKind::Builtin).await;
}

/// A client's keep-alive connection reuses the router's upstream connection instead of opening
/// one per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_reuses_upstream_connections() {
    use std::sync::atomic::Ordering;
    let running = contract::start(RouterKind::Builtin).await;
    let (addr, accepted) = router_support::counting_upstream(false).await;
    running
        .router
        .apply(&table(vec![contract::endpoint("v1-1", "v1", addr)]))
        .await
        .unwrap();
    // One client connection (a pooling client may open a second one when its first is not back
    // in its pool yet; the router then rightly opens a second upstream connection too).
    let mut client = client_connection(running.router.addrs().main).await;
    for _ in 0..50 {
        let (status, _, body) = send(&mut client, "GET", Vec::new()).await;
        assert_eq!((status, body.as_slice()), (200, b"counted".as_slice()));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    running.stop().await;
}

/// A replica that closes every connection after its answer (as a draining one does) costs no
/// failed request: the next request goes on a new upstream connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_connections_causes_no_failure() {
    use std::sync::atomic::Ordering;
    use zdd::router::{Route, RouteTable};
    let running = contract::start(RouterKind::Builtin).await;
    let (addr, accepted) = router_support::counting_upstream(true).await;
    let table = RouteTable {
        main: contract::always(vec![contract::backend(
            "v1",
            1,
            vec![contract::endpoint("v1-1", "v1", addr)],
        )]),
        preview: Route::default(),
    };
    running.router.apply(&table).await.unwrap();
    let statuses = router_support::keep_alive_statuses(&running.main(), 30).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 30);
    running.stop().await;
}

/// An upstream that answers with the request's body (streamed back, so chunked) and reports the
/// `Host` it got in `X-Seen-Host`; counts its connections.
async fn echo_upstream() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
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
async fn client_connection(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>> {
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
    sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    method: &str,
    body: Vec<u8>,
) -> (u16, String, Vec<u8>) {
    use http_body_util::BodyExt;
    sender.ready().await.unwrap();
    let request = hyper::Request::builder()
        .method(method)
        .uri("/echo")
        .header(hyper::header::HOST, "router.test")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        sender.send_request(request),
    )
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

fn table(endpoints: Vec<zdd::router::Endpoint>) -> zdd::router::RouteTable {
    zdd::router::RouteTable {
        main: contract::always(vec![contract::backend("v1", 1, endpoints)]),
        preview: zdd::router::Route::default(),
    }
}

/// Request bodies go up and answer bodies come down whole, on a reused upstream connection, and
/// the client's `Host` is forwarded as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_answer_bodies_stream_through() {
    let running = contract::start(RouterKind::Builtin).await;
    let (addr, accepted) = echo_upstream().await;
    running
        .router
        .apply(&table(vec![contract::endpoint("v1-1", "v1", addr)]))
        .await
        .unwrap();
    let mut client = client_connection(running.router.addrs().main).await;
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
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    running.stop().await;
}

/// An HTTP/1.0 request without `Host` reaches the upstream (spoken to in HTTP/1.1, which needs a
/// `Host`) with the endpoint's address as `Host`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_request_without_host_gets_the_endpoints_address() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let running = contract::start(RouterKind::Builtin).await;
    let (addr, _) = echo_upstream().await;
    running
        .router
        .apply(&table(vec![contract::endpoint("v1-1", "v1", addr)]))
        .await
        .unwrap();
    let mut stream = tokio::net::TcpStream::connect(running.router.addrs().main)
        .await
        .unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut raw),
    )
    .await
    .expect("the router closes an HTTP/1.0 connection after its answer")
    .unwrap();
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(text.starts_with("http/1.0 200"), "{text}");
    assert!(text.contains(&format!("x-seen-host: {addr}")), "{text}");
    running.stop().await;
}

/// The endpoint is chosen per request even on one client connection (round robin goes on), and
/// that connection keeps one upstream connection per endpoint instead of opening new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_per_request_on_one_client_connection() {
    use std::sync::atomic::Ordering;
    let running = contract::start(RouterKind::Builtin).await;
    let (first, first_accepted) = echo_upstream().await;
    let (second, second_accepted) = echo_upstream().await;
    running
        .router
        .apply(&table(vec![
            contract::endpoint("v1-1", "v1", first),
            contract::endpoint("v1-2", "v1", second),
        ]))
        .await
        .unwrap();
    let mut client = client_connection(running.router.addrs().main).await;
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
    running.stop().await;
}

/// Client connections that come one after the other reuse the upstream connections the earlier
/// ones left idle (the worker's pool) rather than opening one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_client_connections_reuse_idle_upstream_connections() {
    let running = contract::start(RouterKind::Builtin).await;
    let (addr, accepted) = echo_upstream().await;
    running
        .router
        .apply(&table(vec![contract::endpoint("v1-1", "v1", addr)]))
        .await
        .unwrap();
    const CLIENTS: usize = 20;
    for _ in 0..CLIENTS {
        let answer = router_support::get(&running.main()).await.unwrap();
        assert_eq!(answer.status, 200);
    }
    let opened = accepted.load(std::sync::atomic::Ordering::SeqCst);
    // Each `get` closes its connection before the next starts; the router may not have noticed
    // every close in time on a busy machine, so only most must be reused.
    assert!(
        opened <= CLIENTS / 2,
        "{opened} upstream connections for {CLIENTS} clients"
    );
    running.stop().await;
}

/// Several workers share the entry points (SO_REUSEPORT) and serve the same table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_share_the_ports() {
    let mut router =
        zdd::router::builtin::BuiltinRouter::start_with_threads("127.0.0.1:0".parse().unwrap(), 3)
            .await
            .unwrap();
    let addr = router_support::upstream("shared").await;
    router.apply(&table(vec![contract::endpoint("v1-1", "v1", addr)]));
    let main = format!("http://{}", router.addrs().main);
    for _ in 0..30 {
        let answer = router_support::get(&main).await.unwrap();
        assert_eq!((answer.status, answer.body.as_str()), (200, "shared"));
    }
    router.shutdown().await;
    assert!(
        router_support::get(&main).await.is_err(),
        "still answering after shutdown"
    );
}

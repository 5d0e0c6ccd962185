//! The library driven from code: a plain axum Router wrapped by the lifecycle, configured with
//! builder methods, shut down with `request_shutdown`, spoken to over HTTP/2 on loopback.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use zdd_lifecycle::{DrainOutcome, DrainReport, Lifecycle, LifecycleConfig, ServeError, State};
use zdd_test_support::poll::eventually;

const PATIENCE: Duration = Duration::from_secs(20);

fn app() -> Router {
    Router::new().route("/", get(|| async { "hello" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    )
}

async fn start(
    config: LifecycleConfig,
) -> (
    Lifecycle,
    std::net::SocketAddr,
    JoinHandle<Result<DrainReport, ServeError>>,
) {
    let lifecycle = Lifecycle::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = lifecycle.with_probe_routes(app());
    let serving = lifecycle.clone();
    let server = tokio::spawn(async move { serving.serve(listener, router).await });
    (lifecycle, address, server)
}

type H2Sender = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

async fn h2_connect(address: std::net::SocketAddr) -> (H2Sender, JoinHandle<()>) {
    let stream = TcpStream::connect(address).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    // Ends when the server has sent GOAWAY and the connection is closed.
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, driver)
}

async fn h2_get(sender: &mut H2Sender, path: &str) -> (StatusCode, http::HeaderMap, String) {
    let request = Request::get(format!("http://zdd-test{path}"))
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn http2_is_served_through_the_drain_delay_then_gets_goaway() {
    // Long enough that the requests below, sent right after the shutdown request, land inside
    // it even when the machine stalls.
    let drain_delay = Duration::from_secs(3);
    let config = LifecycleConfig::default()
        .drain_delay(drain_delay)
        .shutdown_timeout(Duration::from_secs(10))
        .readiness_path("/custom-ready")
        .liveness_path("/custom-live")
        .version("test");
    let (lifecycle, address, server) = start(config).await;
    let (mut sender, driver) = h2_connect(address).await;

    let (status, _, body) = h2_get(&mut sender, "/custom-ready").await;
    assert_eq!(
        (status, body.trim()),
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    );
    lifecycle.mark_ready();
    assert_eq!(h2_get(&mut sender, "/custom-ready").await.0, StatusCode::OK);
    assert_eq!(h2_get(&mut sender, "/custom-live").await.0, StatusCode::OK);

    lifecycle.request_shutdown();
    let requested = Instant::now();
    assert_eq!(lifecycle.state(), State::Draining);
    assert_eq!(
        h2_get(&mut sender, "/custom-ready").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, headers, body) = h2_get(&mut sender, "/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    assert!(
        headers.get(http::header::CONNECTION).is_none(),
        "no connection header on HTTP/2"
    );

    tokio::time::timeout(PATIENCE, driver)
        .await
        .expect("the server closes the HTTP/2 connection (GOAWAY) after the drain delay")
        .unwrap();
    assert!(
        requested.elapsed() >= drain_delay,
        "closed before the drain delay"
    );
    let report = tokio::time::timeout(PATIENCE, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(report.outcome, DrainOutcome::Completed);
    assert!(report.is_clean());
    assert_eq!(lifecycle.state(), State::Stopped);
}

#[tokio::test]
async fn timeout_reports_the_requests_cut_off() {
    let config = LifecycleConfig::default()
        .drain_delay(Duration::from_millis(100))
        .shutdown_timeout(Duration::from_millis(300));
    let (lifecycle, address, server) = start(config).await;
    lifecycle.mark_ready();
    let (mut sender, driver) = h2_connect(address).await;
    let slow = tokio::spawn(async move { h2_get(&mut sender, "/slow").await });
    eventually("the slow request arrives", PATIENCE, async || {
        lifecycle.metrics().in_flight() >= 1
    })
    .await;

    lifecycle.request_shutdown();
    let report = tokio::time::timeout(PATIENCE, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        report.outcome,
        DrainOutcome::TimedOut {
            requests_cut_off: 1
        }
    );
    assert!(!report.is_clean());
    assert_eq!(report.exit_code(), std::process::ExitCode::FAILURE);
    // Cut off when serve returns, not when the runtime goes away.
    tokio::time::timeout(PATIENCE, driver)
        .await
        .expect("the cut-off connection is closed")
        .unwrap();
    slow.abort();
}

#[tokio::test]
async fn second_request_ends_the_drain_at_once() {
    let config = LifecycleConfig::default().drain_delay(Duration::from_secs(60));
    let (lifecycle, _address, server) = start(config).await;
    lifecycle.request_shutdown();
    lifecycle.request_shutdown();
    let report = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("a second request must not wait for the drain delay")
        .unwrap()
        .unwrap();
    assert_eq!(
        report.outcome,
        DrainOutcome::Forced {
            requests_cut_off: 0
        }
    );
    assert!(!report.is_clean());
}

/// tower's contract: a service is called only once it said it is ready. A backpressure layer
/// (here a concurrency limit of 1) holds the second request until the first is answered,
/// instead of panicking on a call it was not ready for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_with_backpressure_is_called_only_when_ready() {
    use tower::Layer;
    let config = LifecycleConfig::default()
        .version("test")
        .drain_delay(Duration::from_millis(100));
    let lifecycle = Lifecycle::new(config);
    lifecycle.mark_ready();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let slow = Router::new().route(
        "/",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "done"
        }),
    );
    let limited = tower::limit::ConcurrencyLimitLayer::new(1).layer(slow);
    let serving = lifecycle.clone();
    let server = tokio::spawn(async move { serving.serve(listener, limited).await });
    let url = format!("http://{address}");
    let (first, second) = tokio::join!(
        zdd_test_support::http::get(&url),
        zdd_test_support::http::get(&url)
    );
    for answer in [first.unwrap(), second.unwrap()] {
        assert_eq!((answer.status, answer.body.as_str()), (200, "done"));
    }
    lifecycle.request_shutdown();
    let report = tokio::time::timeout(PATIENCE, server)
        .await
        .unwrap()
        .unwrap();
    assert!(report.unwrap().is_clean());
}

//! The two servers of `bench/lifecycle.sh`: one axum app (`GET /` answers `Hello, World!`) served
//!
//! - `plain`: the way a service without zdd-lifecycle serves it: hyper-util's auto HTTP/1 + HTTP/2
//!   builder per connection (as `axum::serve` and `crates/demo/examples/bare_hyper.rs` do), with
//!   `TCP_NODELAY`;
//! - `lifecycle`: through zdd-lifecycle: `with_probe_routes` (probes, metrics) and `serve`
//!   (request metrics, the drain machinery), marked ready.
//!
//! Both on a multi-threaded tokio runtime, on 127.0.0.1:`PORT` (default 8082), until SIGTERM (the
//! lifecycle server drains first: `DRAIN_DELAY=0s` makes that immediate).
//!
//! `cargo run --release -p zdd-lifecycle --example bench_server -- plain|lifecycle`

use axum::Router;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use zdd_lifecycle::{Lifecycle, LifecycleConfig};

/// The handler both servers run: the same routes, the same answer.
fn app() -> Router {
    Router::new().route("/", get(|| async { "Hello, World!" }))
}

async fn serve_plain(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let app = app();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn serve_lifecycle(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    // DRAIN_DELAY and the like from the environment: a benchmark can stop it at once.
    let config = LifecycleConfig::from_env().map_err(std::io::Error::other)?;
    let lifecycle = Lifecycle::new(config.version("bench"));
    let app = lifecycle.with_probe_routes(app());
    lifecycle.mark_ready();
    lifecycle
        .serve(listener, app)
        .await
        .map_err(std::io::Error::other)?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let port: u16 = std::env::var("PORT").map_or(Ok(8082), |port| port.parse())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!(
        "bench_server {mode} listening on {}",
        listener.local_addr()?
    );
    match mode.as_str() {
        "plain" => serve_plain(listener).await?,
        "lifecycle" => serve_lifecycle(listener).await?,
        _ => return Err("usage: bench_server plain|lifecycle".into()),
    }
    Ok(())
}

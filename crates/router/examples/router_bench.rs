//! The builtin router on its own, for `bench/router.sh`: listens on `--listen` and sends every
//! request to `--backend` (one endpoint, version `bench`), until killed.
//!
//! `cargo run --release -p zdd-router --example router_bench -- --listen 127.0.0.1:8080 --backend 127.0.0.1:8081 --threads 1`

use std::net::SocketAddr;

use zdd_router::{Backend, BuiltinRouter, Endpoint, Route, RouteTable};

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip_while(|arg| arg != name);
    args.next()?;
    args.next()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen: SocketAddr = arg("--listen")
        .ok_or("--listen ADDR is required")?
        .parse()?;
    let backend: SocketAddr = arg("--backend")
        .ok_or("--backend ADDR is required")?
        .parse()?;
    let threads: usize = arg("--threads").map_or(Ok(1), |t| t.parse())?;
    // The router runs on its own worker threads; this runtime only starts it and waits.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let router = BuiltinRouter::start_with_threads(listen, threads).await?;
        router.apply(&RouteTable {
            main: Route::always(vec![Backend {
                name: "bench".into(),
                weight: 1,
                endpoints: vec![Endpoint {
                    pod: "bench-1".into(),
                    version: "bench".into(),
                    addr: backend,
                    node: None,
                }],
            }]),
            preview: Route::default(),
        });
        eprintln!("router_bench: http://{} -> {backend}", router.addrs().main);
        tokio::signal::ctrl_c().await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

//! The builtin router on its own, for `bench/router.sh`: listens on `--listen` and sends every
//! request to `--backend` (one endpoint, version `bench`), until killed.
//!
//! `cargo run --release -p zdd-router --example router_bench -- --listen 127.0.0.1:8080 --backend 127.0.0.1:8081 --threads 1`
//!
//! What A/B and shadow rules cost: `--header-rule` puts a rule with a header condition (that the
//! load does not match) before the main one, and `--mirror ADDR` copies every request to `ADDR`
//! (the mirror's counters are printed on Ctrl-C).

use std::net::SocketAddr;

use zdd_router::{Backend, BuiltinRouter, Endpoint, Matcher, Mirror, Route, RouteTable, Rule};

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip_while(|arg| arg != name);
    args.next()?;
    args.next()
}

fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint {
        pod: "bench-1".into(),
        version: "bench".into(),
        addr,
        node: None,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen: SocketAddr = arg("--listen")
        .ok_or("--listen ADDR is required")?
        .parse()?;
    let backend: SocketAddr = arg("--backend")
        .ok_or("--backend ADDR is required")?
        .parse()?;
    let threads: usize = arg("--threads").map_or(Ok(1), |t| t.parse())?;
    let header_rule = std::env::args().any(|arg| arg == "--header-rule");
    let mirror: Option<SocketAddr> = arg("--mirror").map(|m| m.parse()).transpose()?;
    let main = Backend {
        name: "bench".into(),
        weight: 1,
        endpoints: vec![endpoint(backend)],
    };
    let mut rules = Vec::new();
    if header_rule {
        rules.push(Rule {
            matcher: Matcher::header("X-Canary", "always"),
            backends: vec![main.clone()],
            mirror: None,
        });
    }
    rules.push(Rule {
        matcher: Matcher::Always,
        backends: vec![main],
        mirror: mirror.map(|addr| Mirror {
            name: "shadow".into(),
            percent: 100,
            endpoints: vec![endpoint(addr)],
        }),
    });
    // The router runs on its own worker threads; this runtime only starts it and waits.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let router = BuiltinRouter::start_with_threads(listen, threads).await?;
        router.apply(&RouteTable {
            main: Route { rules },
            preview: Route::default(),
        });
        eprintln!("router_bench: http://{} -> {backend}", router.addrs().main);
        tokio::signal::ctrl_c().await?;
        for stats in router.mirror_stats() {
            eprintln!("router_bench: mirror {stats:?}");
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

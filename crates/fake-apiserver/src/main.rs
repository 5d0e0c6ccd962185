//! `fake-apiserver`: the fake kube-apiserver as a program, for trying zdd's Kubernetes platform by
//! hand. Tests use the library instead (they need its recorded requests and faults).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use fake_apiserver::{FakeApiServer, FakeConfig};

#[derive(Debug, Parser)]
#[command(
    name = "fake-apiserver",
    about = "A loopback stand-in for kube-apiserver (zdd's tests)"
)]
struct Args {
    /// Address to listen on; always loopback in tests. Port 0 lets the OS pick.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig for this server here.
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context's namespace.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// A new pod becomes ready this long after it is created.
    #[arg(long, default_value = "300ms", value_parser = humantime::parse_duration)]
    pod_ready_after: Duration,
    /// A terminating pod disappears this long after its deletion started.
    #[arg(long, default_value = "300ms", value_parser = humantime::parse_duration)]
    pod_terminate_after: Duration,
    /// How long a ready pod waits before its endpoint is published as ready.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    endpoints_lag: Duration,
    /// How long the data plane takes to see a change of endpoints or weights.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    data_plane_lag: Duration,
    /// Pods of this version never become ready (repeatable).
    #[arg(long)]
    never_ready: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = FakeConfig {
        pod_ready_after: args.pod_ready_after,
        pod_terminate_after: args.pod_terminate_after,
        endpoints_lag: args.endpoints_lag,
        data_plane_lag: args.data_plane_lag,
        ..FakeConfig::default()
    };
    let server = FakeApiServer::start_on(config, args.listen).await?;
    server.faults(|f| f.never_ready.extend(args.never_ready.iter().cloned()));
    if let Some(path) = &args.kubeconfig {
        std::fs::write(path, server.kubeconfig(&args.namespace))?;
    }
    // The first stdout line is the URL, so a script can read it; the second, the data plane.
    println!("{}", server.url());
    println!("{}", server.data_plane_url(&args.namespace, "<service>"));
    tokio::signal::ctrl_c().await?;
    Ok(())
}

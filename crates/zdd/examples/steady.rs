//! A steady state with no rollout, for bench/ceiling.sh: a spec's old version deployed on the
//! local platform (its replicas, its router), then the probe at a rate for a while. Prints the
//! probe's JSON report. The highest rate this holds with 0 failed is what the machine carries
//! through that router, the measure a rollout's ceiling is compared with.
//!
//! `cargo run --release -p zdd --example steady -- --spec examples/rolling-update.yaml \
//!    --zdd target/release/zdd --router builtin --rate 20000 --duration 10s`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use zdd::events::EventLog;
use zdd::model::Routing;
use zdd::platform::local::{LocalConfig, LocalPlatform};
use zdd::platform::{Platform, RouterKind};
use zdd::spec::Spec;

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip_while(|arg| arg != name);
    args.next()?;
    args.next()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec_path = PathBuf::from(arg("--spec").ok_or("--spec FILE is required")?);
    let zdd = arg("--zdd").ok_or("--zdd PATH (the zdd binary) is required")?;
    let router = match arg("--router").as_deref() {
        None | Some("builtin") => RouterKind::Builtin,
        Some("traefik") => RouterKind::Traefik,
        Some(other) => return Err(format!("--router {other}: builtin or traefik").into()),
    };
    let rate: u32 = arg("--rate").ok_or("--rate N is required")?.parse()?;
    let duration = humantime::parse_duration(&arg("--duration").unwrap_or("10s".into()))?;

    let mut spec = Spec::load(&spec_path)?;
    spec.traffic.rate = rate;
    let mut template = spec.template(&spec.from);
    if template
        .command
        .first()
        .is_some_and(|program| program == "zdd")
    {
        template.command[0] = zdd;
    }
    let run_dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut config = LocalConfig::new(run_dir.path());
        config.router = router;
        config.propagation_delay = spec.local.propagation_delay;
        let mut platform = LocalPlatform::start(config, EventLog::new(Instant::now())).await?;
        let result = measure(&mut platform, &spec, &template, duration).await;
        platform.shutdown().await?;
        let report = result?;
        println!("{}", serde_json::to_string(&report)?);
        Ok(())
    })
}

async fn measure(
    platform: &mut LocalPlatform,
    spec: &Spec,
    template: &zdd::model::VersionTemplate,
    duration: Duration,
) -> Result<zdd_probe::Report, Box<dyn std::error::Error>> {
    let replicas = spec.app.replicas;
    platform.scale(template, replicas).await?;
    platform
        .wait_ready(&template.name, replicas, Duration::from_secs(60))
        .await?;
    platform.set_routing(&Routing::default()).await?;
    let url = zdd::engine::join_url(&platform.main_url(), &spec.traffic.path);
    // Every replica published to the router (the endpoints arrive after the propagation delay).
    zdd::engine::data_plane_check::wait_answers(&url, &template.name, 3, Duration::from_secs(30))
        .await?;
    tokio::time::sleep(spec.local.propagation_delay + Duration::from_millis(500)).await;
    let mut config = zdd_probe::ProbeConfig::new(url.parse()?);
    config.rate = spec.traffic.rate;
    config.duration = Some(duration);
    config.connections = spec.traffic.connections_for(config.timeout);
    config.fallback_version_header = Some("X-Zdd-Version".into());
    Ok(zdd_probe::start(config)?.finish().await)
}

//! `zdd rollout -f SPEC`: one rollout of the user's own app, on the local platform or Kubernetes.
//!
//! Exit codes: 0 the rollout succeeded within its budget, 1 over budget, aborted, rolled back or
//! interrupted, 2 a bad spec (one message with file, line, column and field path; nothing started).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::engine::control::{self, Control, Interrupt};
use crate::engine::events::{Event, EventLog};
use crate::engine::{self, Outcome, RunOptions, RunResult};
use crate::platform::Platform;
use crate::platform::kubernetes::{KubeRouter, KubernetesConfig, KubernetesPlatform};
use crate::platform::local::{LocalConfig, LocalPlatform, RouterKind};
use crate::spec::{Spec, Strategy};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlatformKind {
    /// Replicas as child processes on this machine.
    Local,
    /// The current kubeconfig context (or --context).
    Kubernetes,
}

/// Routers of both platforms; each platform accepts its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RouterChoice {
    /// Local: zdd's own Rust router (the default).
    Builtin,
    /// Local: a real Traefik through its file provider. Kubernetes: a TraefikService.
    Traefik,
    /// Kubernetes: only the Service (no weights). The default on Kubernetes.
    Service,
    /// Kubernetes: a Gateway API HTTPRoute with weighted backendRefs.
    GatewayApi,
}

#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    /// The rollout spec (YAML; see docs/spec.md).
    #[arg(short = 'f', long = "file", value_name = "SPEC")]
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = PlatformKind::Local)]
    pub platform: PlatformKind,
    /// Local: builtin | traefik. Kubernetes: service | traefik | gateway-api.
    #[arg(long, value_enum)]
    pub router: Option<RouterChoice>,
    /// Kubernetes: the kubeconfig context (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Kubernetes: the namespace (default: the context's, else `default`).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Kubernetes: a URL reaching the main route from here; the probe's traffic goes there.
    /// Without it no traffic is measured and each scale-to-zero waits --settle-delay instead.
    #[arg(long, value_name = "URL")]
    pub verify_url: Option<String>,
    /// Kubernetes: a URL reaching the preview Service `<name>-preview` from here; blue-green's
    /// preview check goes there. Without it the check is skipped.
    #[arg(long, value_name = "URL")]
    pub preview_url: Option<String>,
    /// Kubernetes without --verify-url: the fixed wait before a version is scaled to 0.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub settle_delay: Option<Duration>,
    /// Local: override the spec's propagation delay (for example 2s).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub propagation_delay: Option<Duration>,
    /// The run's directory (control socket, events, replica logs). Default: ./zdd-runs/<name>.
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Write the result (summary, report and events) as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the probe's HTML report with the rollout's events.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// One line of the summary table (and one object of `--json`).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub strategy: String,
    pub name: String,
    pub outcome: String,
    /// False when zdd could not reach the main route (Kubernetes without `--verify-url`): no
    /// request was sent, the counts below are zeros and the failure budget was not checked.
    pub traffic_measured: bool,
    pub succeeded: bool,
    pub within_budget: bool,
    /// From the first step to the end of the rollout.
    pub duration_s: f64,
    pub total: u64,
    pub failed: u64,
    pub longest_outage_s: f64,
    pub p99_ms: f64,
    pub by_version: std::collections::BTreeMap<String, u64>,
    pub failed_by_kind: std::collections::BTreeMap<String, u64>,
    pub outages: Vec<zdd_probe::Outage>,
    pub report: zdd_probe::Report,
    pub events: Vec<Event>,
}

impl Summary {
    pub fn new(spec: &Spec, result: &RunResult) -> Self {
        let report = &result.report;
        let within_budget = spec
            .budget
            .max_failed
            .is_none_or(|max| report.failed <= max);
        Summary {
            strategy: spec.strategy.kind().to_string(),
            name: spec.name.clone(),
            outcome: result.outcome.to_string(),
            traffic_measured: result.traffic_measured,
            succeeded: result.outcome.succeeded(),
            within_budget,
            duration_s: rollout_duration(&result.events),
            total: report.total,
            failed: report.failed,
            longest_outage_s: report.longest_outage_s,
            p99_ms: report.latency_ms.p99,
            by_version: report.by_version.clone(),
            failed_by_kind: report.failed_by_kind.clone(),
            outages: report.outages.clone(),
            report: report.clone(),
            events: result.events.clone(),
        }
    }

    pub fn passed(&self) -> bool {
        self.succeeded && self.within_budget
    }
}

/// Seconds from "rollout ... started" to its last event ("rollout succeeded", "rolled back", ...).
fn rollout_duration(events: &[Event]) -> f64 {
    let start = events
        .iter()
        .find(|e| e.label.starts_with("rollout ") && e.label.ends_with(" started"));
    let end = events.iter().rev().find(|e| {
        e.label == "rollout succeeded"
            || e.label.starts_with("rolled back")
            || e.label.starts_with("rollback failed")
            || e.label.starts_with("rollout interrupted")
    });
    match (start, end) {
        (Some(start), Some(end)) => (end.t_s - start.t_s).max(0.0),
        _ => 0.0,
    }
}

/// The Markdown table `zdd demo` and `zdd rollout` print.
pub fn render_table(rows: &[Summary]) -> String {
    let mut out = String::from(
        "| strategy | duration | requests | failed | longest outage | p99 | result |\n\
         |---|---:|---:|---:|---:|---:|---|\n",
    );
    for row in rows {
        let result = if row.passed() {
            "ok".to_string()
        } else if !row.succeeded {
            row.outcome.clone()
        } else {
            "over budget".to_string()
        };
        if !row.traffic_measured {
            out.push_str(&format!(
                "| {} | {:.1} s | not measured | not measured | not measured | not measured | {} |\n",
                row.strategy, row.duration_s, result
            ));
            continue;
        }
        out.push_str(&format!(
            "| {} | {:.1} s | {} | {} | {:.2} s | {:.1} ms | {} |\n",
            row.strategy,
            row.duration_s,
            row.total,
            row.failed,
            row.longest_outage_s,
            row.p99_ms,
            result
        ));
    }
    out
}

/// `zdd` as a spec's program means this very binary, so specs run on a machine without `zdd` on
/// PATH (and `zdd demo` needs no second binary).
pub fn resolve_self_command(spec: &mut Spec) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the zdd binary")?;
    let exe = exe.to_string_lossy().to_string();
    let commands = std::iter::once(&mut spec.app.command)
        .chain(spec.from.command.iter_mut())
        .chain(spec.to.command.iter_mut());
    for command in commands {
        if command.first().is_some_and(|program| program == "zdd") {
            command[0] = exe.clone();
        }
    }
    Ok(())
}

/// Creates the run directory and points `<parent>/current` at it.
pub fn prepare_run_dir(run_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("cannot create the run directory {}", run_dir.display()))?;
    if let (Some(parent), Some(name)) = (run_dir.parent(), run_dir.file_name()) {
        let link = parent.join("current");
        if name != "current" {
            let _ = std::fs::remove_file(&link);
            // Best effort: `zdd promote --run-dir` works without it.
            let _ = std::os::unix::fs::symlink(name, &link);
        }
    }
    Ok(())
}

/// Ctrl-C and SIGTERM interrupt the rollout (no rollback; the platform is shut down). A second
/// signal exits at once; the replicas die with zdd (`PR_SET_PDEATHSIG`).
pub fn forward_signals(control: Control) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(tokio::spawn(async move {
        for _ in 0..2 {
            let name = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            if control
                .interrupted()
                .is_some_and(|i| matches!(i, Interrupt::Signal { .. }))
            {
                eprintln!("zdd: second {name}, exiting now");
                std::process::exit(1);
            }
            eprintln!("zdd: {name}: stopping the traffic and the replicas");
            control.interrupt(Interrupt::Signal { name: name.into() });
        }
    }))
}

/// Runs the rollout and shuts the platform down, whatever happened.
pub async fn run_on<P: Platform>(
    platform: &mut P,
    spec: &Spec,
    events: EventLog,
    control: Control,
    options: RunOptions,
) -> anyhow::Result<RunResult> {
    let result = engine::run_rollout(platform, spec, events.clone(), control, options).await;
    let shutdown = platform.shutdown().await;
    let result = result.context("the rollout could not run")?;
    shutdown.context("the platform did not shut down cleanly")?;
    Ok(result)
}

pub fn write_outputs(
    rows: &[Summary],
    json: Option<&Path>,
    html: Option<&Path>,
    as_array: bool,
) -> anyhow::Result<()> {
    if let Some(path) = json {
        let text = if as_array || rows.len() != 1 {
            serde_json::to_string_pretty(rows)?
        } else {
            serde_json::to_string_pretty(&rows[0])?
        };
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = html {
        let titles: Vec<String> = rows
            .iter()
            .map(|r| {
                if r.name == r.strategy {
                    format!("{}: {}", r.strategy, r.outcome)
                } else {
                    format!("{} ({}): {}", r.name, r.strategy, r.outcome)
                }
            })
            .collect();
        let sections: Vec<(&str, &zdd_probe::Report, &[Event])> = rows
            .iter()
            .zip(&titles)
            .map(|(r, t)| (t.as_str(), &r.report, r.events.as_slice()))
            .collect();
        std::fs::write(path, zdd_probe::render_html(&sections))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// On Kubernetes the preview Service has no URL zdd can reach unless `--preview-url` names one:
/// the strategies that check the new version through it skip that check.
fn warn_unchecked_preview(spec: &Spec) {
    let what = match spec.strategy {
        Strategy::Recreate => return,
        Strategy::BlueGreen { .. } => "blue-green's preview check".to_string(),
        Strategy::CanaryWeighted { .. } => format!(
            "the check that {} answers through the preview Service before it gets weight",
            spec.to.name
        ),
        _ => format!(
            "the check that {} answers through the preview Service before it gets all traffic",
            spec.to.name
        ),
    };
    tracing::warn!(
        "no --preview-url: {what} is skipped (the preview Service {}-preview is still created \
         for the check and deleted afterwards)",
        spec.name
    );
}

pub async fn run(args: RolloutArgs) -> anyhow::Result<ExitCode> {
    let mut spec = match Spec::load(&args.file) {
        Ok(spec) => spec,
        Err(err) => {
            eprintln!("{err}");
            return Ok(ExitCode::from(2));
        }
    };
    resolve_self_command(&mut spec)?;
    if let Some(delay) = args.propagation_delay {
        spec.local.propagation_delay = delay;
    }
    let run_dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("zdd-runs").join(&spec.name));
    prepare_run_dir(&run_dir)?;
    let origin = Instant::now();
    let events_file = std::fs::File::create(run_dir.join("events.jsonl"))
        .with_context(|| format!("cannot write events in {}", run_dir.display()))?;
    let events = EventLog::with_sink(origin, Box::new(events_file));
    let control = Control::new();
    let _server = control::serve(control.clone(), &run_dir)
        .with_context(|| format!("cannot open the control socket in {}", run_dir.display()))?;
    let signals = forward_signals(control.clone())?;
    let options = RunOptions::default();

    let result = match args.platform {
        PlatformKind::Local => {
            let router = match args.router {
                None | Some(RouterChoice::Builtin) => RouterKind::Builtin,
                Some(RouterChoice::Traefik) => RouterKind::Traefik,
                Some(other) => {
                    eprintln!(
                        "zdd: --router {other:?} is for --platform kubernetes; local: builtin or traefik"
                    );
                    return Ok(ExitCode::from(2));
                }
            };
            let kubernetes_only = [
                ("--verify-url", args.verify_url.is_some()),
                ("--preview-url", args.preview_url.is_some()),
                ("--settle-delay", args.settle_delay.is_some()),
            ];
            if let Some((flag, _)) = kubernetes_only.iter().find(|(_, given)| *given) {
                eprintln!(
                    "zdd: {flag} is for --platform kubernetes; the local platform's routes are always reachable"
                );
                return Ok(ExitCode::from(2));
            }
            let mut config = LocalConfig::new(&run_dir);
            config.propagation_delay = spec.local.propagation_delay;
            config.router = router;
            let mut platform = LocalPlatform::start(config, events.clone())
                .await
                .context("cannot start the local platform")?;
            run_on(
                &mut platform,
                &spec,
                events.clone(),
                control.clone(),
                options,
            )
            .await
        }
        PlatformKind::Kubernetes => {
            let router = match args.router {
                None | Some(RouterChoice::Service) => KubeRouter::Service,
                Some(RouterChoice::Traefik) => KubeRouter::Traefik,
                Some(RouterChoice::GatewayApi) => KubeRouter::GatewayApi,
                Some(RouterChoice::Builtin) => {
                    eprintln!(
                        "zdd: --router builtin is for --platform local; kubernetes: service, traefik or gateway-api"
                    );
                    return Ok(ExitCode::from(2));
                }
            };
            let mut config = KubernetesConfig::new(&spec.name);
            config.context = args.context.clone();
            config.namespace = args.namespace.clone();
            config.router = router;
            config.verify_url = args.verify_url.clone();
            config.preview_url = args.preview_url.clone();
            if let Some(delay) = args.settle_delay {
                config.settle_delay = delay;
            }
            if args.preview_url.is_none() {
                warn_unchecked_preview(&spec);
            }
            // One deadline for the whole run: the engine's waits and the Deployments' own.
            config.progress_deadline = options.progress_deadline;
            let mut platform = KubernetesPlatform::connect(config, events.clone())
                .await
                .context("cannot reach the Kubernetes cluster")?;
            run_on(
                &mut platform,
                &spec,
                events.clone(),
                control.clone(),
                options,
            )
            .await
        }
    };
    signals.abort();
    let result = result?;
    let summary = Summary::new(&spec, &result);
    write_outputs(
        std::slice::from_ref(&summary),
        args.json.as_deref(),
        args.html.as_deref(),
        false,
    )?;
    if result.traffic_measured {
        print!("{}", zdd_probe::render_text(&result.report));
    } else {
        println!(
            "traffic: not measured (the main route is not reachable from here; pass --verify-url): \
             no request was sent and the failure budget was not checked"
        );
    }
    println!();
    print!("{}", render_table(std::slice::from_ref(&summary)));
    println!("rollout {}: {}", spec.name, result.outcome);
    Ok(
        if summary.passed() && result.outcome == Outcome::Succeeded {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

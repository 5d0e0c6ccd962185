//! `zdd rollout -f SPEC`: one rollout of the user's own app, on the local platform or Kubernetes.
//!
//! Exit codes: 0 the rollout succeeded within its budget, 1 over budget, aborted, rolled back or
//! interrupted, 2 bad input: a bad spec (one message with file, line, column and field path) or a
//! flag that does not fit the platform; nothing started.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::engine::RunOptions;
use crate::platform::kubernetes::MEASURE_A_DRAIN;
use crate::platform::kubernetes::{KubernetesConfig, KubernetesPlatform};
use crate::platform::local::LocalPlatform;
use crate::platform::{AnyPlatform, RouterKind};
use crate::rollout::session::{Session, forward_signals, local_config, resolve_self_command};
use crate::rollout::summary::{Summary, render_analysis, render_table, write_outputs};
use crate::rollout::{RunOutcome, run_on};
use crate::spec::{Spec, Strategy};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlatformKind {
    /// Replicas as child processes on this machine.
    Local,
    /// The current kubeconfig context (or --context).
    Kubernetes,
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
    pub router: Option<RouterKind>,
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

/// On Kubernetes the preview Service has no URL zdd can reach unless `--preview-url` names one:
/// the strategies that check the new version through it skip that check.
fn warn_unchecked_preview(spec: &Spec) {
    let Some(to) = &spec.to else {
        return;
    };
    let what = match spec.strategy {
        Strategy::Recreate | Strategy::ClusterUpgrade { .. } => return,
        Strategy::BlueGreen { .. } => "blue-green's preview check".to_string(),
        Strategy::CanaryWeight { .. } => format!(
            "the check that {} answers through the preview Service before it gets weight",
            to.name
        ),
        _ => format!(
            "the check that {} answers through the preview Service before it gets all traffic",
            to.name
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
    if let Err(usage) = check_flags(&args).and_then(|()| check_spec_fits(&args, &spec)) {
        eprintln!("zdd: {usage}");
        return Ok(ExitCode::from(2));
    }
    resolve_self_command(&mut spec)?;
    if let Some(delay) = args.propagation_delay {
        spec.local.propagation_delay = delay;
    }
    let run_dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("zdd-runs").join(&spec.name));
    let session = Session::open(&run_dir)?;
    let signals = forward_signals(session.control.clone())?;
    let options = RunOptions::default();
    let mut platform = match start_platform(&args, &spec, &session, &options).await {
        Ok(platform) => platform,
        Err(err) => {
            signals.abort();
            return Err(err);
        }
    };
    let result = run_on(
        &mut platform,
        &spec,
        session.events.clone(),
        session.control.clone(),
        options,
    )
    .await;
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
    print!("{}", render_analysis(&result.events));
    print!("{}", render_table(std::slice::from_ref(&summary)));
    println!("rollout {}: {}", spec.name, result.outcome);
    Ok(
        if summary.passed() && result.outcome == RunOutcome::Succeeded {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

/// Flags that do not fit the chosen platform are refused before anything starts.
fn check_flags(args: &RolloutArgs) -> Result<(), String> {
    match args.platform {
        PlatformKind::Local => {
            if let Some(router @ (RouterKind::Service | RouterKind::GatewayApi)) = args.router {
                return Err(format!(
                    "--router {} is for --platform kubernetes; local: builtin or traefik",
                    router.name()
                ));
            }
            let kubernetes_only = [
                ("--verify-url", args.verify_url.is_some()),
                ("--preview-url", args.preview_url.is_some()),
                ("--settle-delay", args.settle_delay.is_some()),
                ("--context", args.context.is_some()),
                ("--namespace", args.namespace.is_some()),
            ];
            if let Some((flag, _)) = kubernetes_only.iter().find(|(_, given)| *given) {
                return Err(format!(
                    "{flag} is for --platform kubernetes; the local platform's routes are always reachable"
                ));
            }
        }
        PlatformKind::Kubernetes => {
            if args.router == Some(RouterKind::Builtin) {
                return Err(
                    "--router builtin is for --platform local; kubernetes: service, traefik or gateway-api"
                        .into(),
                );
            }
            if args.propagation_delay.is_some() {
                return Err(
                    "--propagation-delay is for --platform local: a cluster has its own".into(),
                );
            }
        }
    }
    Ok(())
}

/// What a spec asks that the chosen platform cannot do is refused (or said) before anything
/// starts.
fn check_spec_fits(args: &RolloutArgs, spec: &Spec) -> Result<(), String> {
    if args.platform != PlatformKind::Kubernetes {
        return Ok(());
    }
    if let Strategy::ClusterUpgrade { .. } = spec.strategy {
        return Err(format!("strategy clusterUpgrade: {MEASURE_A_DRAIN}"));
    }
    if let Some(budget) = spec.app.disruption_budget {
        tracing::warn!(
            "app.podDisruptionBudget ({budget}) is not applied on Kubernetes: it limits drains, \
             not rollouts; apply one with the app's manifests \
             (deploy/kubernetes/base/service/pdb.yaml)"
        );
    }
    Ok(())
}

async fn start_platform(
    args: &RolloutArgs,
    spec: &Spec,
    session: &Session,
    options: &RunOptions,
) -> anyhow::Result<AnyPlatform> {
    let events = session.events.clone();
    Ok(match args.platform {
        PlatformKind::Local => {
            let router = args.router.unwrap_or(RouterKind::Builtin);
            let config = local_config(spec, &session.run_dir, router);
            AnyPlatform::Local(
                LocalPlatform::start(config, events)
                    .await
                    .context("cannot start the local platform")?,
            )
        }
        PlatformKind::Kubernetes => {
            let mut config = KubernetesConfig::new(&spec.name);
            config.context = args.context.clone();
            config.namespace = args.namespace.clone();
            config.router = args.router.unwrap_or(RouterKind::Service);
            config.verify_url = args.verify_url.clone();
            config.preview_url = args.preview_url.clone();
            if let Some(delay) = args.settle_delay {
                config.settle_delay = delay;
            }
            if args.preview_url.is_none() {
                warn_unchecked_preview(spec);
            }
            // One deadline for the whole run: the engine's waits and the Deployments' own.
            config.progress_deadline = options.progress_deadline;
            AnyPlatform::Kubernetes(Box::new(
                KubernetesPlatform::connect(config, events)
                    .await
                    .context("cannot reach the Kubernetes cluster")?,
            ))
        }
    })
}

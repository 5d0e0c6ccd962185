//! `zdd demo [STRATEGY...]`: the talk's five strategies and A/B by header and shadow, from v1 to
//! v2 of the reference service (this binary's `zdd serve`), each with the probe's traffic through
//! it, then one table.
//!
//! Each strategy runs exactly the spec in `examples/<strategy>.yaml` (compiled in), so the
//! examples stay runnable; flags only scale the run (rate, replicas, pauses, router).
//! `zdd demo cluster-upgrade` is a comparison of its own (`cluster_upgrade`): three runs of one
//! node upgrade, not part of the default seven; so is `zdd demo canary-analysis`
//! (`canary_analysis`), a bad v2 rolled back by analysis.

mod canary_analysis;
mod cluster_upgrade;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::RunOptions;
use crate::engine::control::{Control, Interrupt};
use crate::platform::RouterKind;
use crate::platform::local::LocalPlatform;
use crate::rollout::run_on;
use crate::rollout::session::{Session, forward_signals, local_config, resolve_self_command};
use crate::rollout::summary::{Summary, render_table, write_outputs};
use crate::spec::{CanaryStep, Spec, Strategy};

/// The demo's strategies, in the order they run, with their specs.
pub const STRATEGIES: [(&str, &str); 7] = [
    (
        "recreate",
        include_str!("../../../../../examples/recreate.yaml"),
    ),
    (
        "rolling-update",
        include_str!("../../../../../examples/rolling-update.yaml"),
    ),
    (
        "blue-green",
        include_str!("../../../../../examples/blue-green.yaml"),
    ),
    (
        "canary-replicas",
        include_str!("../../../../../examples/canary-replicas.yaml"),
    ),
    (
        "canary-weight",
        include_str!("../../../../../examples/canary-weight.yaml"),
    ),
    (
        "ab-header",
        include_str!("../../../../../examples/ab-header.yaml"),
    ),
    (
        "shadow",
        include_str!("../../../../../examples/shadow.yaml"),
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoStrategy {
    Recreate,
    RollingUpdate,
    BlueGreen,
    /// Canary by replicas (`trafficRouting: replicas`).
    #[value(alias = "canary")]
    CanaryReplicas,
    /// Canary by weight (`trafficRouting: weight`).
    #[value(alias = "canary-weighted")]
    CanaryWeight,
    /// A/B by header: a header route sends the testers' requests (a segment of the probe's) to
    /// v2 while everyone else stays on v1; then a canary by weight.
    #[value(alias = "ab")]
    AbHeader,
    /// Shadow: a mirror copies half the requests to v2, whose answers are discarded; then a
    /// canary by weight.
    Shadow,
    /// Not a rollout: three nodes drained one at a time, three times (packed; spread by
    /// anti-affinity; with a disruption budget and preStop too), compared in one table.
    ClusterUpgrade,
    /// A canary by weight judged by analysis: a v2 failing 5% of its requests is rolled back at
    /// its first weight; the table shows the blast radius.
    CanaryAnalysis,
}

impl DemoStrategy {
    fn name(self) -> &'static str {
        match self {
            DemoStrategy::Recreate => "recreate",
            DemoStrategy::RollingUpdate => "rolling-update",
            DemoStrategy::BlueGreen => "blue-green",
            DemoStrategy::CanaryReplicas => "canary-replicas",
            DemoStrategy::CanaryWeight => "canary-weight",
            DemoStrategy::AbHeader => "ab-header",
            DemoStrategy::Shadow => "shadow",
            DemoStrategy::ClusterUpgrade => "cluster-upgrade",
            DemoStrategy::CanaryAnalysis => canary_analysis::NAME,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Strategies to run (default: the seven rollouts, in this order; cluster-upgrade only when
    /// named).
    #[arg(value_enum)]
    pub strategies: Vec<DemoStrategy>,
    /// The local data plane: builtin or traefik.
    #[arg(long, value_enum, default_value_t = RouterKind::Builtin)]
    pub router: RouterKind,
    /// Requests per second through each rollout.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Most requests the probe has in flight (and so connections it opens); default: enough for
    /// a whole timeout at the rate (rate × 2s, at least 64).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: Option<u32>,
    /// Replicas of each version.
    #[arg(long, default_value_t = 3)]
    pub replicas: u32,
    /// Replace every timed canary pause with this one (for example 500ms for a quick run).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub pause: Option<Duration>,
    /// Endpoint propagation delay (the preStop sleep stays longer than it).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub propagation_delay: Option<Duration>,
    /// Parent of the runs' directories (one per strategy).
    #[arg(long, default_value = "zdd-runs/demo", value_name = "DIR")]
    pub run_dir: PathBuf,
    /// Write an array with one object per strategy.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write one page with a chart per strategy.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// The spec `zdd demo` runs for `strategy`, adjusted by the flags.
pub fn demo_spec(strategy: &str, args: &DemoArgs) -> anyhow::Result<Spec> {
    let (_, text) = STRATEGIES
        .iter()
        .chain([&(canary_analysis::NAME, canary_analysis::SPEC)])
        .find(|(name, _)| *name == strategy)
        .with_context(|| format!("no demo strategy {strategy}"))?;
    let mut spec = Spec::parse(text, &format!("examples/{strategy}.yaml"))?;
    resolve_self_command(&mut spec)?;
    spec.app.replicas = args.replicas.max(1);
    spec.traffic.rate = args.rate.max(1);
    if args.connections.is_some() {
        spec.traffic.connections = args.connections;
    }
    if let Some(delay) = args.propagation_delay {
        spec.local.propagation_delay = delay;
        // The race preStop exists for stays won: the sleep outlasts the propagation.
        let sleep = delay + Duration::from_secs(1);
        spec.app.pre_stop_sleep = spec.app.pre_stop_sleep.max(sleep);
    }
    if let Some(pause) = args.pause {
        let shorten = |steps: &mut Vec<CanaryStep>| {
            for step in steps {
                if let CanaryStep::Pause(Some(d)) = step {
                    *d = pause;
                }
            }
        };
        match &mut spec.strategy {
            Strategy::CanaryReplicas { steps } | Strategy::CanaryWeight { steps } => shorten(steps),
            _ => {}
        }
    }
    // The canary by replicas steps are written for 3 replicas; scale them to --replicas.
    if let Strategy::CanaryReplicas { steps } = &mut spec.strategy
        && spec.app.replicas != 3
    {
        let n = spec.app.replicas;
        for step in steps.iter_mut() {
            if let CanaryStep::SetReplicas { from, to } = step {
                *to = (*to * n).div_ceil(3).min(n);
                *from = (*from * n / 3).min(n);
                if *from + *to == 0 {
                    *to = 1;
                }
            }
        }
    }
    Ok(spec)
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if !matches!(args.router, RouterKind::Builtin | RouterKind::Traefik) {
        eprintln!(
            "zdd: --router {} is a Kubernetes router; zdd demo runs locally: builtin or traefik",
            args.router.name()
        );
        return Ok(ExitCode::from(2));
    }
    let strategies: Vec<&str> = if args.strategies.is_empty() {
        STRATEGIES.iter().map(|(name, _)| *name).collect()
    } else {
        args.strategies.iter().map(|s| s.name()).collect()
    };
    let mut specs = Vec::new();
    for name in &strategies {
        if *name == DemoStrategy::ClusterUpgrade.name() {
            specs.extend(cluster_upgrade::specs(&args)?);
        } else {
            specs.push(demo_spec(name, &args)?);
        }
    }
    let control = Control::new();
    let signals = forward_signals(control.clone())?;
    let mut rows = Vec::new();
    let started = Instant::now();
    for spec in &specs {
        if control.interrupted().is_some() {
            break;
        }
        // One session (and control handle) per strategy, fed by the one signal handler.
        let session = Session::open(&args.run_dir.join(&spec.name))?;
        let relay = relay_interrupts(control.clone(), session.control.clone());
        let bar = progress_bar(spec);
        let ticker = tick_progress(bar.clone(), session.control.clone());

        let config = local_config(spec, &session.run_dir, args.router);
        let mut platform = LocalPlatform::start(config, session.events.clone())
            .await
            .context("cannot start the local platform")?;
        let result = run_on(
            &mut platform,
            spec,
            session.events.clone(),
            session.control.clone(),
            RunOptions::default(),
        )
        .await;
        ticker.abort();
        relay.abort();
        bar.finish_and_clear();
        let result = result?;
        let summary = Summary::new(spec, &result);
        eprintln!(
            "{:<16} {}: {} requests, {} failed, longest outage {:.2}s",
            summary.name, summary.outcome, summary.total, summary.failed, summary.longest_outage_s
        );
        rows.push(summary);
    }
    signals.abort();
    write_outputs(&rows, args.json.as_deref(), args.html.as_deref(), true)?;
    let (upgrades, rollouts): (Vec<_>, Vec<_>) = specs
        .iter()
        .zip(&rows)
        .partition(|(spec, _)| !spec.strategy.changes_version());
    if !rollouts.is_empty() {
        let rollouts: Vec<Summary> = rollouts.into_iter().map(|(_, row)| row.clone()).collect();
        println!();
        print!("{}", render_table(&rollouts));
        for row in rollouts.iter().filter(|r| r.name == canary_analysis::NAME) {
            print!("{}", canary_analysis::render_blast_radius(row));
        }
    }
    if !upgrades.is_empty() {
        println!(
            "\ncluster upgrade of {} nodes, one at a time:\n",
            upgrades[0].0.local.nodes
        );
        print!("{}", cluster_upgrade::render_table(&upgrades));
    }
    println!(
        "\n{} runs, {} replicas, {} requests/s, router {}, {:.0}s in all",
        rows.len(),
        args.replicas,
        args.rate,
        args.router.name(),
        started.elapsed().as_secs_f64()
    );
    let interrupted = control.interrupted().is_some() || rows.len() < specs.len();
    // The analysis demo's right outcome is its rollback.
    let all_passed = rows.iter().all(|row| {
        if row.name == canary_analysis::NAME {
            canary_analysis::as_expected(row)
        } else {
            row.passed()
        }
    });
    Ok(if all_passed && !interrupted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Passes a signal received by the demo on to the running strategy.
fn relay_interrupts(from: Control, to: Control) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interrupts = from.subscribe_interrupt();
        loop {
            if let Some(why @ Interrupt::Signal { .. }) = interrupts.borrow_and_update().clone() {
                to.interrupt(why);
                return;
            }
            if interrupts.changed().await.is_err() {
                return;
            }
        }
    })
}

fn progress_bar(spec: &Spec) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix:<16} {elapsed:>4} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(spec.name.clone());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn tick_progress(bar: ProgressBar, control: Control) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let s = control.status();
            let shares: Vec<String> = s
                .by_version
                .iter()
                .map(|(v, n)| format!("{v} {n}"))
                .collect();
            bar.set_message(format!(
                "{:?} {} | sent {} ok {} failed {} [{}]",
                s.phase,
                s.step.as_deref().unwrap_or(""),
                s.sent,
                s.ok,
                s.failed,
                shares.join(" ")
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

//! One whole rollout: deploy the old version, start the probe's traffic, run the strategy, roll
//! back when it fails, stop the traffic and return what was measured.
//!
//! - [`run_rollout`] is the run on one platform; [`run_on`] also shuts the platform down;
//! - `execute` runs the strategy and the rollback;
//! - `status_ticker` keeps `zdd status` current, `control_socket` answers it (and `zdd drain`,
//!   which `node_requests` runs on the platform's nodes);
//! - `summary` turns a run into the table, the JSON and the HTML the commands write;
//! - `session` holds what a command sets up around a run (run directory, signals).

pub mod control_socket;
mod execute;
mod node_requests;
pub mod route_windows;

pub use execute::execute;
pub mod session;
mod status_ticker;
pub mod summary;

use std::sync::Arc;
use std::time::{Duration, Instant};

use zdd_probe::{ProbeConfig, Report};

use self::node_requests::NodeRequests;
use self::status_ticker::StatusTicker;
use crate::engine::control::{Control, Interrupt};
use crate::engine::{Engine, EngineError, RunOptions, Which, join_url};
use crate::events::{Event, EventLog, Record};
use crate::platform::{NodeMaintenance, Platform, TrafficAccess};
use crate::spec::Spec;
use crate::strategy;

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded,
    /// Aborted, over budget or a failed step; traffic went back to the old version.
    RolledBack(String),
    /// The rollout failed and so did the rollback.
    Failed(String),
    /// Ctrl-C or SIGTERM.
    Interrupted(String),
}

impl RunOutcome {
    pub fn succeeded(&self) -> bool {
        matches!(self, RunOutcome::Succeeded)
    }
}

impl std::fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunOutcome::Succeeded => write!(f, "succeeded"),
            RunOutcome::RolledBack(why) => write!(f, "rolled back ({why})"),
            RunOutcome::Failed(why) => write!(f, "failed ({why})"),
            RunOutcome::Interrupted(why) => write!(f, "interrupted ({why})"),
        }
    }
}

/// What a run produced.
pub struct RunResult {
    pub outcome: RunOutcome,
    /// Empty (all zeros) when the traffic was not measured.
    pub report: Report,
    pub events: Vec<Record>,
    /// False when the platform's main route was not reachable from here
    /// ([`TrafficAccess::Unreachable`]): no request was sent and no budget was checked.
    pub traffic_measured: bool,
}

/// Runs the rollout and shuts the platform down, whatever happened.
pub async fn run_on<P: Platform>(
    platform: &mut P,
    spec: &Spec,
    events: EventLog,
    control: Control,
    options: RunOptions,
) -> anyhow::Result<RunResult> {
    use anyhow::Context;
    let result = run_rollout(platform, spec, events, control, options).await;
    let shutdown = platform.shutdown().await;
    let result = result.context("the rollout could not run")?;
    shutdown.context("the platform did not shut down cleanly")?;
    Ok(result)
}

/// One whole run on `platform`: deploy the old version, traffic on, strategy, traffic off.
/// The caller shuts the platform down afterwards.
pub async fn run_rollout<P: Platform>(
    platform: &mut P,
    spec: &Spec,
    events: EventLog,
    control: Control,
    options: RunOptions,
) -> Result<RunResult, EngineError> {
    let nodes = platform.nodes();
    let _node_requests = NodeRequests::serve(&control, nodes.clone());
    let mut engine = Engine::new(platform, spec, events.clone(), control.clone(), options);
    if let TrafficAccess::Unreachable { settle_delay } = engine.platform().traffic_access() {
        return run_unmeasured(engine, settle_delay, nodes).await;
    }
    deploy_old_version(&mut engine).await?;

    let url = join_url(&engine.platform().main_url(), &spec.traffic.path);
    let uri: http::Uri = url
        .parse()
        .map_err(|e| EngineError::Other(format!("bad main URL {url}: {e}")))?;
    let mut config = ProbeConfig::new(uri);
    config.rate = spec.traffic.rate;
    // The most requests in flight; connections are opened only as needed.
    config.connections = spec.traffic.connections_for(config.timeout);
    config.fallback_version_header = Some("X-Zdd-Version".into());
    config.origin = Some(events.origin());
    config.segments = spec
        .traffic
        .segments
        .iter()
        .map(|s| zdd_probe::Segment {
            name: s.name.clone(),
            share: s.share_pct / 100.0,
            headers: s.headers.clone(),
        })
        .collect();
    let probe =
        Arc::new(zdd_probe::start(config).map_err(|e| EngineError::Other(format!("probe: {e}")))?);
    let traffic_start = Instant::now();
    events.emit(Event::TrafficStarted {
        rate: spec.traffic.rate,
        url,
    });
    engine.attach_traffic(probe.clone(), traffic_start);
    let ticker = StatusTicker::start(control.clone(), Some(probe.clone()), nodes);

    let settle = engine.options().settle;
    let outcome = match engine.guarded(tokio::time::sleep(settle)).await {
        Ok(()) => execute::execute(&mut engine).await,
        // Before the first step nothing needs rolling back.
        Err(err) => match control.interrupted() {
            Some(Interrupt::Signal { name }) => RunOutcome::Interrupted(name),
            _ => RunOutcome::Failed(err.to_string()),
        },
    };
    if !matches!(outcome, RunOutcome::Interrupted(_)) {
        tokio::time::sleep(settle).await;
    }
    probe.stop();
    engine.detach_traffic();
    drop(engine);
    ticker.stop().await;
    let report = match Arc::try_unwrap(probe) {
        Ok(probe) => probe.finish().await,
        Err(_) => return Err(EngineError::Other("the probe is still shared".into())),
    };
    events.emit(Event::TrafficStopped {
        total: report.total,
        failed: report.failed,
    });
    Ok(RunResult {
        outcome,
        report,
        events: events.snapshot(),
        traffic_measured: true,
    })
}

/// A run whose main route zdd cannot reach: no probe traffic, no budget, and a fixed
/// `settle_delay` before every scale-to-zero instead of the data-plane check.
async fn run_unmeasured<P: Platform>(
    mut engine: Engine<'_, P>,
    settle_delay: Duration,
    nodes: Arc<dyn NodeMaintenance>,
) -> Result<RunResult, EngineError> {
    let delay = humantime::format_duration(settle_delay);
    tracing::warn!(
        "the main route is not reachable from here (no --verify-url): no traffic is sent, the \
         failure budget is not measured, and each version is scaled to 0 after a fixed {delay} \
         instead of after traffic shows that no request reaches it"
    );
    engine
        .events()
        .emit(Event::TrafficNotMeasured { settle_delay });
    let ticker = StatusTicker::start(engine.control().clone(), None, nodes);
    deploy_old_version(&mut engine).await?;
    let outcome = execute::execute(&mut engine).await;
    ticker.stop().await;
    Ok(RunResult {
        outcome,
        report: Report::default(),
        events: engine.events().snapshot(),
        traffic_measured: false,
    })
}

/// Deploys the old version and waits until the main route answers from it.
async fn deploy_old_version<P: Platform>(engine: &mut Engine<'_, P>) -> Result<(), EngineError> {
    let replicas = engine.replicas();
    engine.events().emit(Event::Deploying {
        version: engine.name(Which::Old),
        replicas,
    });
    engine.scale(Which::Old, replicas).await?;
    engine.wait_ready(Which::Old, replicas).await?;
    let routing = strategy::initial_routing(engine);
    engine.set_routing(routing).await?;
    engine.wait_main_serves(Which::Old).await
}

//! The strategy engine: runs a strategy's steps on a platform, records events, checks the data plane.
//!
//! [`run_rollout`] is one whole run: deploy the old version, start the probe's traffic, run the
//! strategy (see `crate::strategy`), roll back on abort or budget, and return the probe's report.
//! Strategies only call [`Engine`]'s methods; the one that removes a version,
//! [`Engine::retire`], first takes it out of the route and proves with live traffic that no
//! request reaches it any more.

pub mod control;
pub mod data_plane;
pub mod events;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zdd_probe::{ProbeConfig, ProbeHandle, Report, WindowStats};

use self::control::{Control, Interrupt, Phase};
use self::data_plane::HttpChecker;
use self::events::{Event, EventLog};
use crate::platform::{
    Platform, PlatformError, Routing, TrafficAccess, TrafficPolicy, VersionTemplate,
};
use crate::spec::{Spec, Strategy};

/// The probe's live counters, as the engine reads them (a trait so tests can fake traffic).
pub trait TrafficView: Send + Sync {
    /// Outcomes of requests scheduled at or after `since` (see [`ProbeHandle::window`]).
    fn window(&self, since: Instant) -> WindowStats;
}

impl TrafficView for ProbeHandle {
    fn window(&self, since: Instant) -> WindowStats {
        ProbeHandle::window(self, since)
    }
}

/// One of the rollout's two versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    From,
    To,
}

impl Which {
    pub fn other(self) -> Which {
        match self {
            Which::From => Which::To,
            Which::To => Which::From,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("{0}")]
    Interrupted(Interrupt),
    #[error("data plane: {0}")]
    DataPlane(String),
    #[error("{0}")]
    Other(String),
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Aborted, over budget or a failed step; traffic went back to the old version.
    RolledBack(String),
    /// The rollout failed and so did the rollback.
    Failed(String),
    /// Ctrl-C or SIGTERM.
    Interrupted(String),
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        matches!(self, Outcome::Succeeded)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Succeeded => write!(f, "succeeded"),
            Outcome::RolledBack(why) => write!(f, "rolled back ({why})"),
            Outcome::Failed(why) => write!(f, "failed ({why})"),
            Outcome::Interrupted(why) => write!(f, "interrupted ({why})"),
        }
    }
}

/// Tunables of a run that are not part of the spec.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Longest wait for replicas to become ready or to go away (Deployment `progressDeadlineSeconds`).
    pub progress_deadline: Duration,
    /// Traffic before the first step and after the last, so the report shows both steady states.
    pub settle: Duration,
    /// Successive answers from the right version that prove a route reaches it.
    pub route_checks: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            progress_deadline: Duration::from_secs(120),
            settle: Duration::from_secs(1),
            route_checks: 3,
        }
    }
}

/// What a run produced.
pub struct RunResult {
    pub outcome: Outcome,
    /// Empty (all zeros) when the traffic was not measured.
    pub report: Report,
    pub events: Vec<Event>,
    /// False when the platform's main route was not reachable from here
    /// ([`TrafficAccess::Unreachable`]): no request was sent and no budget was checked.
    pub traffic_measured: bool,
}

/// Watches for interrupts (abort, signal) and the failure budget while a step runs.
#[derive(Clone)]
struct Guard {
    control: Control,
    traffic: Option<Arc<dyn TrafficView>>,
    since: Instant,
    max_failed: Option<u64>,
    /// Off during a rollback: the rollback itself must not be interrupted by the budget.
    active: bool,
}

impl Guard {
    fn check_now(&self) -> Option<Interrupt> {
        if let Some(interrupt) = self.control.interrupted() {
            return Some(interrupt);
        }
        if let (Some(traffic), Some(max_failed)) = (&self.traffic, self.max_failed) {
            let failed = traffic.window(self.since).failed;
            if failed > max_failed {
                let why = Interrupt::BudgetExceeded { failed, max_failed };
                self.control.interrupt(why.clone());
                return Some(why);
            }
        }
        None
    }

    async fn tripped(&self) -> Interrupt {
        let mut interrupts = self.control.subscribe_interrupt();
        loop {
            if let Some(why) = self.check_now() {
                return why;
            }
            tokio::select! {
                _ = interrupts.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    async fn run<T, E>(&self, work: impl Future<Output = Result<T, E>>) -> Result<T, EngineError>
    where
        EngineError: From<E>,
    {
        if !self.active {
            return Ok(work.await?);
        }
        if let Some(why) = self.check_now() {
            return Err(EngineError::Interrupted(why));
        }
        tokio::select! {
            result = work => Ok(result?),
            why = self.tripped() => Err(EngineError::Interrupted(why)),
        }
    }
}

impl From<std::convert::Infallible> for EngineError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// A rollout in progress on one platform. Strategies drive it step by step.
pub struct Engine<'p, P: Platform> {
    platform: &'p mut P,
    pub spec: Spec,
    pub events: EventLog,
    pub control: Control,
    pub options: RunOptions,
    from: VersionTemplate,
    to: VersionTemplate,
    routing: Routing,
    guard: Guard,
    http: HttpChecker,
}

impl<'p, P: Platform> Engine<'p, P> {
    pub fn new(
        platform: &'p mut P,
        spec: &Spec,
        events: EventLog,
        control: Control,
        options: RunOptions,
    ) -> Self {
        control.update(|s| {
            s.name = spec.name.clone();
            s.strategy = spec.strategy.kind().to_string();
            s.from = spec.from.name.clone();
            s.to = spec.to.name.clone();
            s.set_routing(&Routing::default());
        });
        Engine {
            platform,
            from: spec.template(&spec.from),
            to: spec.template(&spec.to),
            spec: spec.clone(),
            events,
            guard: Guard {
                control: control.clone(),
                traffic: None,
                since: Instant::now(),
                max_failed: spec.budget.max_failed,
                active: true,
            },
            control,
            options,
            routing: Routing::default(),
            http: HttpChecker::new(),
        }
    }

    /// From now on the budget is checked against `traffic`, counting from `since`.
    pub fn attach_traffic(&mut self, traffic: Arc<dyn TrafficView>, since: Instant) {
        self.guard.traffic = Some(traffic);
        self.guard.since = since;
    }

    fn detach_traffic(&mut self) {
        self.guard.traffic = None;
    }

    pub fn template(&self, which: Which) -> &VersionTemplate {
        match which {
            Which::From => &self.from,
            Which::To => &self.to,
        }
    }

    pub fn name(&self, which: Which) -> String {
        self.template(which).name.clone()
    }

    pub fn replicas(&self) -> u32 {
        self.spec.app.replicas
    }

    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// Runs `work` unless the rollout is interrupted first.
    pub async fn guarded<T>(&self, work: impl Future<Output = T>) -> Result<T, EngineError> {
        self.guard
            .run(async { Ok::<T, std::convert::Infallible>(work.await) })
            .await
    }

    pub async fn scale(&mut self, which: Which, replicas: u32) -> Result<(), EngineError> {
        let template = self.template(which).clone();
        self.events
            .emit(format!("scale {} to {replicas}", template.name));
        let guard = self.guard.clone();
        guard.run(self.platform.scale(&template, replicas)).await?;
        self.refresh_status().await;
        Ok(())
    }

    pub async fn wait_ready(&mut self, which: Which, ready: u32) -> Result<u32, EngineError> {
        let name = self.name(which);
        let guard = self.guard.clone();
        let deadline = self.options.progress_deadline;
        let status = guard
            .run(self.platform.wait_ready(&name, ready, deadline))
            .await?;
        self.refresh_status().await;
        Ok(status.ready)
    }

    pub async fn wait_running_at_most(
        &mut self,
        which: Which,
        running: u32,
    ) -> Result<(), EngineError> {
        let name = self.name(which);
        let guard = self.guard.clone();
        let deadline = self.options.progress_deadline;
        guard
            .run(self.platform.wait_running_at_most(&name, running, deadline))
            .await?;
        self.refresh_status().await;
        Ok(())
    }

    /// Ready replicas of each version right now: `(from, to)`.
    pub async fn ready_counts(&mut self) -> Result<(u32, u32), EngineError> {
        let guard = self.guard.clone();
        let status = guard.run(self.platform.status()).await?;
        let ready = |name: &str| {
            status
                .versions
                .iter()
                .find(|v| v.name == name)
                .map_or(0, |v| v.ready)
        };
        Ok((ready(&self.from.name), ready(&self.to.name)))
    }

    pub async fn set_routing(&mut self, routing: Routing) -> Result<(), EngineError> {
        if routing == self.routing {
            return Ok(());
        }
        let label = describe_routing(&routing, &self.routing);
        let guard = self.guard.clone();
        guard.run(self.platform.set_routing(&routing)).await?;
        self.events.emit(label);
        self.control.update(|s| s.set_routing(&routing));
        self.routing = routing;
        Ok(())
    }

    /// Sets the weights of the main route (canary by weight).
    pub async fn set_weight(&mut self, to_weight: u32) -> Result<(), EngineError> {
        let main = TrafficPolicy::Weighted(vec![
            (self.from.name.clone(), 100 - to_weight),
            (self.to.name.clone(), to_weight),
        ]);
        self.set_routing(Routing {
            main,
            preview: self.routing.preview.clone(),
        })
        .await
    }

    /// Can the main route send requests to this version?
    fn main_reaches(&self, which: Which) -> bool {
        let name = self.name(which);
        match &self.routing.main {
            TrafficPolicy::AllReady => true,
            TrafficPolicy::Only(only) => *only == name,
            TrafficPolicy::Weighted(weights) => weights.iter().any(|(v, w)| *v == name && *w > 0),
        }
    }

    /// Proves that the data plane reaches `which`: through the preview route, requests are
    /// answered by that version. Needed before the main route sends traffic only to it, because
    /// endpoints reach the router some time after readiness.
    pub async fn ensure_reachable(&mut self, which: Which) -> Result<(), EngineError> {
        let name = self.name(which);
        self.set_routing(Routing {
            main: self.routing.main.clone(),
            preview: Some(name.clone()),
        })
        .await?;
        let Some(preview) = self.platform.preview_url() else {
            self.events.emit(format!(
                "no preview route on this platform: cannot check that {name} is reachable"
            ));
            return Ok(());
        };
        self.wait_answers_from(&preview, &name).await?;
        self.events
            .emit(format!("data plane: preview route answers from {name}"));
        Ok(())
    }

    /// Waits until `route` (a base URL) answers the traffic path from version `name`, in a row.
    async fn wait_answers_from(&mut self, route: &str, name: &str) -> Result<(), EngineError> {
        let url = join_url(route, &self.spec.traffic.path);
        let checks = self.options.route_checks;
        let timeout = self.options.progress_deadline;
        let http = self.http.clone();
        self.guarded(http.wait_answers(&url, name, checks, timeout))
            .await?
            .map_err(EngineError::DataPlane)
    }

    /// Waits until the main route answers from `which` (after the endpoints reached the router).
    pub async fn wait_main_serves(&mut self, which: Which) -> Result<(), EngineError> {
        let name = self.name(which);
        let TrafficAccess::Url(main) = self.platform.traffic_access() else {
            self.events.emit(format!(
                "main route not checked (not reachable from here): {name} is ready"
            ));
            return Ok(());
        };
        self.wait_answers_from(&main, &name).await?;
        self.events.emit(format!("{name} serves the main route"));
        Ok(())
    }

    /// Proves, with the probe's live traffic, that no request reaches `which` any more. When the
    /// main route is not reachable from here, waits the platform's fixed delay instead.
    pub async fn verify_drained(&mut self, which: Which) -> Result<(), EngineError> {
        let name = self.name(which);
        if let TrafficAccess::Unreachable { settle_delay } = self.platform.traffic_access() {
            self.events.emit(format!(
                "data plane not checked: waiting a fixed {} before scaling {name} down",
                humantime::format_duration(settle_delay)
            ));
            return self.guarded(tokio::time::sleep(settle_delay)).await;
        }
        let Some(traffic) = self.guard.traffic.clone() else {
            return Err(EngineError::DataPlane(
                "no traffic to check the data plane with".into(),
            ));
        };
        let check = self.spec.data_plane_check.clone();
        let drained = self
            .guarded(data_plane::verify_drained(traffic.as_ref(), &name, &check))
            .await?
            .map_err(EngineError::DataPlane)?;
        self.events.emit(format!(
            "data plane: no request reached {name} for {} ({} requests, checked in {})",
            humantime::format_duration(check.window),
            drained.requests,
            format_secs(drained.waited),
        ));
        Ok(())
    }

    /// Scales `which` to zero the safe way: first the main route stops sending it traffic (if it
    /// still did), then the data plane is checked, only then the scale-down.
    pub async fn retire(&mut self, which: Which) -> Result<(), EngineError> {
        let keep = which.other();
        if self.main_reaches(which) {
            self.ensure_reachable(keep).await?;
            let main = match &self.routing.main {
                TrafficPolicy::Weighted(_) => {
                    let mut weights = vec![(self.from.name.clone(), 0), (self.to.name.clone(), 0)];
                    let index = usize::from(keep == Which::To);
                    weights[index].1 = 100;
                    TrafficPolicy::Weighted(weights)
                }
                _ => TrafficPolicy::Only(self.name(keep)),
            };
            self.set_routing(Routing {
                main,
                preview: None,
            })
            .await?;
        }
        self.verify_drained(which).await?;
        self.scale(which, 0).await
    }

    /// Sleeps `duration`, or waits for `zdd promote` when `None`.
    pub async fn pause(&mut self, duration: Option<Duration>) -> Result<(), EngineError> {
        match duration {
            Some(duration) => self.guarded(tokio::time::sleep(duration)).await,
            None => {
                let mut promotions = self.control.subscribe_promotions();
                promotions.borrow_and_update();
                self.control.update(|s| s.phase = Phase::Paused);
                self.events.emit("paused until zdd promote");
                let result = self.guarded(promotions.changed()).await;
                self.control.update(|s| s.phase = Phase::Progressing);
                result?.map_err(|_| EngineError::Other("control channel closed".into()))?;
                self.events.emit("promoted");
                Ok(())
            }
        }
    }

    /// `total` 0: the number of steps is not known in advance (rolling update).
    pub fn step_started(&self, index: usize, total: usize, description: &str) {
        let step = step_label(index, total, description);
        self.events.emit(format!("{step} started"));
        self.control.update(|s| s.step = Some(step));
    }

    pub fn step_finished(&self, index: usize, total: usize, description: &str) {
        let step = step_label(index, total, description);
        self.events.emit(format!("{step} finished"));
    }

    async fn refresh_status(&mut self) {
        if let Ok(status) = self.platform.status().await {
            self.control.update(|s| {
                s.versions = status.versions;
                s.pods = status.pods;
            });
        }
    }

    /// Deploys the old version and waits until the main route answers from it.
    pub async fn prepare(&mut self) -> Result<(), EngineError> {
        let replicas = self.replicas();
        self.events.emit(format!(
            "deploying {} ({replicas} replicas)",
            self.from.name
        ));
        self.scale(Which::From, replicas).await?;
        self.wait_ready(Which::From, replicas).await?;
        self.set_routing(self.initial_routing()).await?;
        self.wait_main_serves(Which::From).await
    }

    /// Before the first step: blue-green and canary by weight route by version from the start,
    /// the others send traffic to every ready replica (a Service selecting on `app` only).
    pub fn initial_routing(&self) -> Routing {
        let main = match self.spec.strategy {
            Strategy::BlueGreen { .. } | Strategy::CanaryWeighted { .. } => {
                TrafficPolicy::Only(self.from.name.clone())
            }
            _ => TrafficPolicy::AllReady,
        };
        Routing {
            main,
            preview: None,
        }
    }

    /// Runs the strategy; on an interrupt (other than a signal) or a failed step, rolls back.
    pub async fn execute(&mut self) -> Outcome {
        self.control.update(|s| s.phase = Phase::Progressing);
        self.events.emit(format!(
            "rollout {} → {} ({}) started",
            self.from.name,
            self.to.name,
            self.spec.strategy.kind()
        ));
        let initial = self.initial_routing();
        let result = match self.set_routing(initial).await {
            Ok(()) => crate::strategy::run(self).await,
            Err(err) => Err(err),
        };
        let result = match result {
            Ok(()) => {
                // The old version's replicas finish their termination before the run ends.
                self.wait_running_at_most(Which::From, 0).await
            }
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => {
                self.events.emit("rollout succeeded");
                self.control.update(|s| {
                    s.phase = Phase::Succeeded;
                    s.step = None;
                });
                Outcome::Succeeded
            }
            Err(EngineError::Interrupted(Interrupt::Signal { name })) => {
                self.events.emit(format!("rollout interrupted by {name}"));
                self.control.update(|s| s.phase = Phase::Interrupted);
                Outcome::Interrupted(name)
            }
            Err(err) => {
                let why = err.to_string();
                self.events
                    .emit(format!("rollout failed: {why}; rolling back"));
                match self.rollback().await {
                    Ok(()) => {
                        self.control.update(|s| {
                            s.phase = Phase::RolledBack;
                            s.message = Some(why.clone());
                        });
                        Outcome::RolledBack(why)
                    }
                    Err(rollback) => {
                        let both = format!("{why}; rollback failed: {rollback}");
                        self.events.emit(format!("rollback failed: {rollback}"));
                        self.control.update(|s| {
                            s.phase = Phase::Failed;
                            s.message = Some(both.clone());
                        });
                        Outcome::Failed(both)
                    }
                }
            }
        }
    }

    /// All traffic back to the old version, the new one scaled to zero.
    async fn rollback(&mut self) -> Result<(), EngineError> {
        self.guard.active = false;
        self.control.update(|s| s.phase = Phase::RollingBack);
        let replicas = self.replicas();
        self.scale(Which::From, replicas).await?;
        self.wait_ready(Which::From, replicas).await?;
        if self.main_reaches(Which::To) {
            self.ensure_reachable(Which::From).await?;
            self.set_routing(Routing {
                main: TrafficPolicy::Only(self.from.name.clone()),
                preview: None,
            })
            .await?;
        } else if self.routing.preview.is_some() {
            // Aborted during blue-green's preview: the preview route must not outlive the version.
            self.set_routing(Routing {
                main: self.routing.main.clone(),
                preview: None,
            })
            .await?;
        }
        // A failing data plane must not keep the new version up: check, but scale down anyway.
        if let Err(err) = self.verify_drained(Which::To).await {
            self.events.emit(format!(
                "rollback: {err}; scaling {} down anyway",
                self.to.name
            ));
        }
        self.scale(Which::To, 0).await?;
        self.wait_running_at_most(Which::To, 0).await?;
        self.events
            .emit(format!("rolled back to {}", self.from.name));
        Ok(())
    }
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
    let mut engine = Engine::new(platform, spec, events.clone(), control.clone(), options);
    if let TrafficAccess::Unreachable { settle_delay } = engine.platform.traffic_access() {
        return run_unmeasured(engine, settle_delay).await;
    }
    engine.prepare().await?;

    let url = join_url(&engine.platform.main_url(), &spec.traffic.path);
    let uri: http::Uri = url
        .parse()
        .map_err(|e| EngineError::Other(format!("bad main URL {url}: {e}")))?;
    let mut config = ProbeConfig::new(uri);
    config.rate = spec.traffic.rate;
    // Enough connections for every request of a whole timeout: a slow answer (a router reloading)
    // then shows as latency, and only a request that really fails counts as failed.
    let per_timeout = (f64::from(spec.traffic.rate) * config.timeout.as_secs_f64()).ceil() as usize;
    config.connections = config.connections.max(per_timeout);
    config.fallback_version_header = Some("X-Zdd-Version".into());
    config.origin = Some(events.origin());
    let probe =
        Arc::new(zdd_probe::start(config).map_err(|e| EngineError::Other(format!("probe: {e}")))?);
    let traffic_start = Instant::now();
    events.emit(format!(
        "traffic: {} requests/s to {url}",
        spec.traffic.rate
    ));
    engine.attach_traffic(probe.clone(), traffic_start);
    let ticker = StatusTicker::start(control.clone(), Some(probe.clone()));

    let settle = engine.options.settle;
    let outcome = match engine.guarded(tokio::time::sleep(settle)).await {
        Ok(()) => engine.execute().await,
        // Before the first step nothing needs rolling back.
        Err(err) => match engine.control.interrupted() {
            Some(Interrupt::Signal { name }) => Outcome::Interrupted(name),
            _ => Outcome::Failed(err.to_string()),
        },
    };
    if !matches!(outcome, Outcome::Interrupted(_)) {
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
    events.emit(format!(
        "traffic stopped: {} requests, {} failed",
        report.total, report.failed
    ));
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
) -> Result<RunResult, EngineError> {
    let delay = humantime::format_duration(settle_delay);
    tracing::warn!(
        "the main route is not reachable from here (no --verify-url): no traffic is sent, the \
         failure budget is not measured, and each version is scaled to 0 after a fixed {delay} \
         instead of after traffic shows that no request reaches it"
    );
    engine.events.emit(format!(
        "traffic: not measured (main route not reachable from here); fixed {delay} before each scale-down"
    ));
    let ticker = StatusTicker::start(engine.control.clone(), None);
    engine.prepare().await?;
    let outcome = engine.execute().await;
    ticker.stop().await;
    Ok(RunResult {
        outcome,
        report: Report::default(),
        events: engine.events.snapshot(),
        traffic_measured: false,
    })
}

/// Refreshes the run's status every 200 ms (elapsed time and, with traffic, the probe's counts)
/// for `zdd status`, until stopped or dropped.
struct StatusTicker(tokio::task::JoinHandle<()>);

impl StatusTicker {
    fn start(control: Control, probe: Option<Arc<ProbeHandle>>) -> StatusTicker {
        let started = Instant::now();
        StatusTicker(tokio::spawn(async move {
            loop {
                let progress = probe.as_ref().map(|probe| probe.progress());
                control.update(|s| {
                    s.elapsed_s = started.elapsed().as_secs_f64();
                    if let Some(progress) = progress {
                        s.sent = progress.sent;
                        s.ok = progress.ok;
                        s.failed = progress.failed;
                        s.by_version = progress.by_version;
                    }
                });
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }))
    }

    /// Stops the ticker and waits until its task (and its share of the probe) is gone.
    async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for StatusTicker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn describe_routing(new: &Routing, old: &Routing) -> String {
    let main = match &new.main {
        TrafficPolicy::AllReady => "all ready replicas".to_string(),
        TrafficPolicy::Only(version) => format!("only {version}"),
        TrafficPolicy::Weighted(weights) => weights
            .iter()
            .map(|(v, w)| format!("{v}={w}"))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let what = match (&new.main, &old.main) {
        (TrafficPolicy::Weighted(_), _) => format!("weight set: {main}"),
        (TrafficPolicy::Only(v), old) if *old != TrafficPolicy::Only(v.clone()) => {
            format!("selector switched to {v}")
        }
        (a, b) if a != b => format!("routing: main → {main}"),
        _ => format!("routing: main {main}"),
    };
    match &new.preview {
        Some(preview) if new.preview != old.preview => format!("{what}; preview → {preview}"),
        None if old.preview.is_some() => format!("{what}; preview removed"),
        _ => what,
    }
}

fn step_label(index: usize, total: usize, description: &str) -> String {
    if total == 0 {
        format!("step {}: {description}", index + 1)
    } else {
        format!("step {}/{total}: {description}", index + 1)
    }
}

fn join_url(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

fn format_secs(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

//! The step API strategies are written in: scale, wait, route, check the data plane, retire,
//! pause, and on nodes drain, keep down, return (`nodes`). Every step runs under the [`guard`] (abort, signals, the failure budget) and leaves an
//! [`Event`].
//!
//! The one way to take a version down is [`Engine::retire`]: it first takes the version out of
//! the main route, then proves with live traffic that no request reaches it any more, and only
//! then scales it to zero. [`Engine::scale`] refuses zero.

pub mod control;
pub mod data_plane_check;
mod guard;
mod nodes;
mod routes;
pub mod traffic;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::control::{Control, Interrupt, Phase};
use self::guard::Guard;
use self::traffic::TrafficView;
use crate::events::{Event, EventLog};
use crate::model::{Routing, TrafficPolicy, VersionTemplate, Weights};
use crate::platform::{Platform, PlatformError, TrafficAccess};
use crate::spec::Spec;

/// One of the rollout's two versions: the old one (`versions.from` in the spec) and the new one
/// (`versions.to`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Old,
    New,
}

impl Which {
    pub fn other(self) -> Which {
        match self {
            Which::Old => Which::New,
            Which::New => Which::Old,
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

impl From<std::convert::Infallible> for EngineError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
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

/// How [`Engine::retire`] makes sure no request is lost when a version goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retire {
    /// The normal way: out of the main route, then the data-plane check must pass.
    AfterDrainCheck,
    /// Recreate: nothing else can serve, so no check could pass; the gap is what zdd measures.
    WithDowntime,
    /// A rollback: check, but a failing data plane must not keep the new version up.
    EvenIfStillReached,
}

/// A rollout in progress on one platform. Strategies drive it step by step.
pub struct Engine<'p, P: Platform> {
    platform: &'p mut P,
    spec: Spec,
    events: EventLog,
    control: Control,
    options: RunOptions,
    old: VersionTemplate,
    new: VersionTemplate,
    routing: Routing,
    guard: Guard,
    /// The last mirror counters read (see `routes`).
    mirror_measured: Option<crate::model::MirrorStats>,
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
            s.to = spec
                .to
                .as_ref()
                .map(|to| to.name.clone())
                .unwrap_or_default();
            s.set_routing(&Routing::default());
        });
        Engine {
            platform,
            old: spec.template(&spec.from),
            // A cluster upgrade has no new version: `Which::New` is the old one, and no strategy
            // step of it names `Which::New`.
            new: spec.template(spec.to.as_ref().unwrap_or(&spec.from)),
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
            mirror_measured: None,
        }
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn events(&self) -> &EventLog {
        &self.events
    }

    pub fn control(&self) -> &Control {
        &self.control
    }

    pub fn options(&self) -> &RunOptions {
        &self.options
    }

    pub fn platform(&self) -> &P {
        self.platform
    }

    /// From now on the budget is checked against `traffic`, counting from `since`.
    pub fn attach_traffic(&mut self, traffic: Arc<dyn TrafficView>, since: Instant) {
        self.guard.traffic = Some(traffic);
        self.guard.since = since;
    }

    /// The probe's live counters, while traffic is attached (analysis reads them).
    pub fn traffic(&self) -> Option<Arc<dyn TrafficView>> {
        self.guard.traffic.clone()
    }

    pub fn detach_traffic(&mut self) {
        self.guard.traffic = None;
    }

    /// For a rollback: from now on neither the budget nor `zdd abort` interrupts a step.
    pub fn stop_guarding(&mut self) {
        self.guard.active = false;
    }

    pub fn template(&self, which: Which) -> &VersionTemplate {
        match which {
            Which::Old => &self.old,
            Which::New => &self.new,
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

    /// Sets the replica count of a version; at least 1 (only [`Engine::retire`] goes to zero).
    pub async fn scale(&mut self, which: Which, replicas: u32) -> Result<(), EngineError> {
        if replicas == 0 {
            return Err(EngineError::Other(format!(
                "scale {} to 0: only retire takes a version down",
                self.name(which)
            )));
        }
        self.scale_unchecked(which, replicas).await
    }

    async fn scale_unchecked(&mut self, which: Which, replicas: u32) -> Result<(), EngineError> {
        let template = self.template(which).clone();
        self.events.emit(Event::Scaled {
            version: template.name.clone(),
            replicas,
        });
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

    /// Ready replicas of each version right now: `(old, new)`.
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
        Ok((ready(&self.old.name), ready(&self.new.name)))
    }

    pub async fn set_routing(&mut self, routing: Routing) -> Result<(), EngineError> {
        if routing == self.routing {
            return Ok(());
        }
        self.measure_mirror_before(&routing).await;
        let guard = self.guard.clone();
        guard.run(self.platform.set_routing(&routing)).await?;
        self.events.emit(Event::RoutingSet {
            routing: routing.clone(),
        });
        for event in routes::route_events(&self.routing, &routing) {
            self.events.emit(event);
        }
        self.control.update(|s| s.set_routing(&routing));
        self.routing = routing;
        Ok(())
    }

    /// Sets the weights of the main route (canary by weight): the new version gets `new_weight`
    /// percent, the old one the rest.
    pub async fn set_weight(&mut self, new_weight: u32) -> Result<(), EngineError> {
        let main = TrafficPolicy::Weighted(Weights(vec![
            (self.old.name.clone(), 100 - new_weight),
            (self.new.name.clone(), new_weight),
        ]));
        self.set_routing(Routing {
            main,
            ..self.routing.clone()
        })
        .await
    }

    /// Can the main route send requests to this version?
    pub fn main_reaches(&self, which: Which) -> bool {
        let name = self.name(which);
        match &self.routing.main {
            TrafficPolicy::AllReady => true,
            TrafficPolicy::Only(only) => *only == name,
            TrafficPolicy::Weighted(weights) => weights.of(&name) > 0,
        }
    }

    /// Proves that the data plane reaches `which`: through the preview route, requests are
    /// answered by that version, [`RunOptions::route_checks`] times in a row. Needed before the
    /// main route sends traffic only to it, because endpoints reach the router some time after
    /// readiness.
    pub async fn ensure_reachable(&mut self, which: Which) -> Result<(), EngineError> {
        self.ensure_reachable_in_a_row(which, self.options.route_checks)
            .await
    }

    /// [`Engine::ensure_reachable`] with `checks` answers in a row.
    pub async fn ensure_reachable_in_a_row(
        &mut self,
        which: Which,
        checks: u32,
    ) -> Result<(), EngineError> {
        let name = self.name(which);
        self.set_routing(Routing {
            preview: Some(name.clone()),
            ..self.routing.clone()
        })
        .await?;
        let Some(preview) = self.platform.preview_url() else {
            self.events.emit(Event::PreviewNotChecked { version: name });
            return Ok(());
        };
        self.wait_answers_from(&preview, &name, checks).await?;
        self.events.emit(Event::PreviewAnswers { version: name });
        Ok(())
    }

    /// Waits until `route` (a base URL) answers the traffic path from version `name`, `checks`
    /// times in a row.
    async fn wait_answers_from(
        &mut self,
        route: &str,
        name: &str,
        checks: u32,
    ) -> Result<(), EngineError> {
        let url = join_url(route, &self.spec.traffic.path);
        let timeout = self.options.progress_deadline;
        self.guarded(data_plane_check::wait_answers(
            &url,
            name,
            checks.max(1),
            timeout,
        ))
        .await?
        .map_err(EngineError::DataPlane)
    }

    /// Waits until the main route answers from `which` (after the endpoints reached the router).
    pub async fn wait_main_serves(&mut self, which: Which) -> Result<(), EngineError> {
        let name = self.name(which);
        let TrafficAccess::Url(main) = self.platform.traffic_access() else {
            self.events.emit(Event::MainNotChecked { version: name });
            return Ok(());
        };
        self.wait_answers_from(&main, &name, self.options.route_checks)
            .await?;
        self.events.emit(Event::MainServes { version: name });
        Ok(())
    }

    /// Proves, with the probe's live traffic, that no request reaches `which` any more. When the
    /// main route is not reachable from here, waits the platform's fixed delay instead.
    async fn verify_drained(&mut self, which: Which) -> Result<(), EngineError> {
        let name = self.name(which);
        if let TrafficAccess::Unreachable { settle_delay } = self.platform.traffic_access() {
            self.events.emit(Event::DrainNotChecked {
                version: name,
                delay: settle_delay,
            });
            return self.guarded(tokio::time::sleep(settle_delay)).await;
        }
        let Some(traffic) = self.guard.traffic.clone() else {
            return Err(EngineError::DataPlane(
                "no traffic to check the data plane with".into(),
            ));
        };
        let check = self.spec.data_plane_check.clone();
        let drained = self
            .guarded(data_plane_check::verify_drained(
                traffic.as_ref(),
                &name,
                &check,
            ))
            .await?
            .map_err(EngineError::DataPlane)?;
        self.events.emit(Event::Drained {
            version: name,
            window: check.window,
            requests: drained.requests,
            waited: drained.waited,
        });
        Ok(())
    }

    /// Scales `which` to zero, the way `how` says. [`Retire::AfterDrainCheck`]: first the main
    /// route stops sending it traffic (if it still did) and the preview route goes, then the data
    /// plane is checked, only then the scale-down.
    pub async fn retire(&mut self, which: Which, how: Retire) -> Result<(), EngineError> {
        match how {
            Retire::WithDowntime => {}
            Retire::AfterDrainCheck => {
                let keep = which.other();
                let main = if self.main_reaches(which) {
                    self.ensure_reachable(keep).await?;
                    match &self.routing.main {
                        TrafficPolicy::Weighted(_) => self.weights_all_to(keep),
                        _ => TrafficPolicy::Only(self.name(keep)),
                    }
                } else {
                    self.routing.main.clone()
                };
                // The preview and every managed route go before a version does.
                self.set_routing(Routing::main_only(main)).await?;
                self.verify_drained(which).await?;
            }
            Retire::EvenIfStillReached => {
                if let Err(err) = self.verify_drained(which).await {
                    self.events.emit(Event::DrainCheckFailed {
                        version: self.name(which),
                        reason: err.to_string(),
                    });
                }
            }
        }
        self.scale_unchecked(which, 0).await
    }

    /// The weighted main route with everything on `keep` (the versions keep their order).
    fn weights_all_to(&self, keep: Which) -> TrafficPolicy {
        let weight = |which: Which| if which == keep { 100 } else { 0 };
        TrafficPolicy::Weighted(Weights(vec![
            (self.old.name.clone(), weight(Which::Old)),
            (self.new.name.clone(), weight(Which::New)),
        ]))
    }

    /// Sleeps `duration`, or waits for `zdd promote` when `None`.
    pub async fn pause(&mut self, duration: Option<Duration>) -> Result<(), EngineError> {
        match duration {
            Some(duration) => self.guarded(tokio::time::sleep(duration)).await,
            None => {
                let mut promotions = self.control.subscribe_promotions();
                promotions.borrow_and_update();
                self.control.update(|s| s.phase = Phase::Paused);
                self.events.emit(Event::Paused);
                let result = self.guarded(promotions.changed()).await;
                self.control.update(|s| s.phase = Phase::Progressing);
                result?.map_err(|_| EngineError::Other("control channel closed".into()))?;
                self.events.emit(Event::Promoted);
                Ok(())
            }
        }
    }

    /// `total` 0: the number of steps is not known in advance (rolling update).
    pub fn step_started(&self, index: usize, total: usize, description: &str) {
        let step = step_label(index, total, description);
        self.events.emit(Event::StepStarted { step: step.clone() });
        self.control.update(|s| s.step = Some(step));
    }

    pub fn step_finished(&self, index: usize, total: usize, description: &str) {
        let step = step_label(index, total, description);
        self.events.emit(Event::StepFinished { step });
    }

    async fn refresh_status(&mut self) {
        if let Ok(status) = self.platform.status().await {
            self.control.update(|s| {
                s.versions = status.versions;
                s.pods = status.pods;
                s.nodes = status.nodes;
            });
        }
    }
}

fn step_label(index: usize, total: usize, description: &str) -> String {
    if total == 0 {
        format!("step {}: {description}", index + 1)
    } else {
        format!("step {}/{total}: {description}", index + 1)
    }
}

/// `base` (no trailing `/` needed) followed by `path`.
pub fn join_url(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

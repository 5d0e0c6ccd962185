//! Analysis: zdd decides from measurements whether the new version goes on (docs/analysis.md).
//! Every interval each metric of the spec's `analysis:` block is measured once: from the probe's
//! answers per version (success rate, latency), from Prometheus, or by running a command. A
//! metric that fails more than `failureLimit` times, or stays inconclusive more than
//! `inconclusiveLimit` times, stops the rollout with [`Interrupt::AnalysisFailed`], which rolls
//! back through the same path as `zdd abort` and the budget.
//!
//! Two ways to run it: [`Analysis::background`] measures in a task beside the steps (a guarded
//! step notices the interrupt within 100 ms), [`Analysis::step`] measures for a while in the
//! foreground and passes only when every metric passed at least once. Inconclusive is never a
//! pass: the background analysis ends ([`Background::finish`]) only once every metric passed at
//! least once, in the background or in a step; until then the promotion waits (each interval
//! brings a verdict, so the limits end the wait if no pass comes).

mod measure;
mod prometheus;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use self::measure::{Interval, Measurement};
use crate::engine::control::{Control, Interrupt};
use crate::engine::traffic::TrafficView;
use crate::engine::{Engine, EngineError, Which, join_url};
use crate::events::{Event, EventLog, Verdict};
use crate::model::MirrorStats;
use crate::platform::{MirrorCounters, Platform, TrafficAccess};
use crate::spec::analysis::{AnalysisSpec, MetricKind};
use crate::sync::lock;

/// After an interval ends, its last probe slot must end too, and its answers arrive.
const SETTLE: Duration = Duration::from_millis(500);

/// The analysis of one rollout: what to measure, and where from.
#[derive(Clone)]
pub struct Analysis {
    spec: AnalysisSpec,
    traffic: Option<Arc<dyn TrafficView>>,
    events: EventLog,
    control: Control,
    new: String,
    old: String,
    url: String,
    /// The platform's mirror counters, for the `mirror` metric (`None`: it does not count copies).
    mirror: Option<Arc<dyn MirrorCounters>>,
    /// The mirror counters at the previous reading: each interval judges the difference.
    mirror_before: Arc<Mutex<Option<MirrorStats>>>,
    /// Set while an analysis step measures: the background skips those intervals.
    background_paused: Arc<AtomicBool>,
    /// The metrics that passed at least once so far (background and steps).
    passed_once: Arc<Mutex<BTreeSet<String>>>,
}

/// Each metric's verdicts so far, in one run of measurements.
#[derive(Clone, Copy, Default)]
struct Tally {
    passed: u32,
    failed: u32,
    inconclusive: u32,
}

impl Analysis {
    /// The analysis the spec asks for, if any.
    pub fn for_engine<P: Platform>(engine: &Engine<'_, P>) -> Option<Analysis> {
        let spec = engine.spec().analysis.clone()?;
        let url = match engine.platform().traffic_access() {
            TrafficAccess::Url(url) => url,
            TrafficAccess::Unreachable { .. } => engine.platform().main_url(),
        };
        Some(Analysis {
            spec,
            traffic: engine.traffic(),
            events: engine.events().clone(),
            control: engine.control().clone(),
            new: engine.name(Which::New),
            old: engine.name(Which::Old),
            url,
            mirror: engine.platform().mirror_counters(),
            mirror_before: Arc::default(),
            background_paused: Arc::new(AtomicBool::new(false)),
            passed_once: Arc::default(),
        })
    }

    /// Canary: the step (1-based) the background analysis starts with.
    pub fn starting_step(&self) -> usize {
        self.spec.starting_step
    }

    /// Measures in the background until the returned handle is dropped; a metric over its
    /// limit interrupts the rollout.
    pub fn background(&self) -> Background {
        let analysis = self.clone();
        let task = tokio::spawn(async move {
            if let Err(why) = analysis.measure_until(None, "background analysis").await {
                analysis.control.interrupt(why);
            }
        });
        Background {
            task,
            analysis: self.clone(),
        }
    }

    /// An analysis step: measures for `duration` (whole intervals, at least one); passes when no
    /// metric went over its limits and each passed at least once.
    pub async fn step<P: Platform>(
        &self,
        engine: &Engine<'_, P>,
        duration: Duration,
    ) -> Result<(), EngineError> {
        let intervals = (duration.as_secs() / self.spec.interval.as_secs()).max(1) as u32;
        self.background_paused.store(true, Ordering::SeqCst);
        let result = engine
            .guarded(self.measure_until(Some(intervals), "analysis step"))
            .await;
        self.background_paused.store(false, Ordering::SeqCst);
        let tallies = result?.map_err(EngineError::Interrupted)?;
        for (metric, tally) in &tallies {
            if tally.passed == 0 {
                return Err(EngineError::Interrupted(Interrupt::AnalysisFailed {
                    metric: metric.clone(),
                    reason: format!(
                        "no measurement passed in the analysis step ({} failed, {} inconclusive)",
                        tally.failed, tally.inconclusive
                    ),
                }));
            }
        }
        Ok(())
    }

    /// An analysis step on traffic of its own through `route` (a base URL): blue-green's
    /// pre-promotion analysis through the preview route, which the main probe does not reach.
    /// That traffic's failures are the analysis's, not the budget's.
    pub async fn step_through<P: Platform>(
        &self,
        engine: &Engine<'_, P>,
        route: &str,
        duration: Duration,
    ) -> Result<(), EngineError> {
        let url = join_url(route, &engine.spec().traffic.path);
        let uri: http::Uri = url
            .parse()
            .map_err(|e| EngineError::Other(format!("bad preview URL {url}: {e}")))?;
        let mut config = zdd_probe::ProbeConfig::new(uri);
        config.rate = engine.spec().traffic.rate;
        config.connections = engine.spec().traffic.connections_for(config.timeout);
        config.fallback_version_header = Some("X-Zdd-Version".into());
        config.origin = Some(self.events.origin());
        let probe = Arc::new(
            zdd_probe::start(config).map_err(|e| EngineError::Other(format!("probe: {e}")))?,
        );
        let through = Analysis {
            traffic: Some(probe.clone()),
            url: route.to_string(),
            ..self.clone()
        };
        let result = through.step(engine, duration).await;
        probe.stop();
        drop(through);
        if let Ok(probe) = Arc::try_unwrap(probe) {
            probe.finish().await;
        }
        result
    }

    /// Measures every interval, `intervals` times (`None`: until dropped). `Err` as soon as a
    /// metric is over a limit.
    async fn measure_until(
        &self,
        intervals: Option<u32>,
        what: &str,
    ) -> Result<BTreeMap<String, Tally>, Interrupt> {
        self.events.emit(Event::AnalysisStarted {
            what: what.to_string(),
            metrics: self.spec.metrics.iter().map(|m| m.name.clone()).collect(),
            interval: self.spec.interval,
        });
        let background = intervals.is_none();
        // The first interval's copies are counted from here.
        let _ = self.mirror_copies().await;
        let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
        let mut from = Instant::now();
        let mut measured = 0;
        while intervals.is_none_or(|n| measured < n) {
            let to = from + self.spec.interval;
            tokio::time::sleep_until((to + zdd_probe::MEASURE_SLOT + SETTLE).into()).await;
            if !(background && self.background_paused.load(Ordering::SeqCst)) {
                self.measure_interval(from, to, &mut tallies).await?;
                self.show(what, &tallies);
            }
            from = to;
            measured += 1;
        }
        Ok(tallies)
    }

    async fn measure_interval(
        &self,
        from: Instant,
        to: Instant,
        tallies: &mut BTreeMap<String, Tally>,
    ) -> Result<(), Interrupt> {
        let versions = self
            .traffic
            .as_ref()
            .map(|traffic| traffic.versions_between(from, to));
        let mirror = self.mirror_copies().await;
        let interval = Interval {
            versions: versions.as_ref(),
            mirror: &mirror,
            new: &self.new,
            old: &self.old,
            min_requests: self.spec.min_requests,
            url: &self.url,
        };
        let origin = self.events.origin();
        let seconds = |at: Instant| at.saturating_duration_since(origin).as_secs_f64();
        for metric in &self.spec.metrics {
            let Measurement {
                verdict,
                value,
                threshold,
                detail,
            } = measure::measure(&metric.kind, &interval).await;
            let tally = tallies.entry(metric.name.clone()).or_default();
            match verdict {
                Verdict::Pass => {
                    tally.passed += 1;
                    lock(&self.passed_once).insert(metric.name.clone());
                }
                Verdict::Fail => tally.failed += 1,
                Verdict::Inconclusive => tally.inconclusive += 1,
            }
            self.events.emit(Event::AnalysisMeasured {
                metric: metric.name.clone(),
                verdict,
                value,
                threshold: threshold.clone(),
                detail: detail.clone(),
                from_s: seconds(from),
                to_s: seconds(to),
            });
            let over = if tally.failed > self.spec.failure_limit {
                Some(format!(
                    "{} failed measurements, failureLimit {}; last: {detail} (wanted {threshold})",
                    tally.failed, self.spec.failure_limit
                ))
            } else if tally.inconclusive > self.spec.inconclusive_limit {
                Some(format!(
                    "{} inconclusive measurements, inconclusiveLimit {}; last: {detail}",
                    tally.inconclusive, self.spec.inconclusive_limit
                ))
            } else {
                None
            };
            if let Some(reason) = over {
                return Err(Interrupt::AnalysisFailed {
                    metric: metric.name.clone(),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// The copies the mirror route sent to the new version since the previous reading (the mirror
    /// metric's interval), or why there are none to judge. Nothing is read without a mirror metric.
    async fn mirror_copies(&self) -> Result<MirrorStats, String> {
        let wanted = self
            .spec
            .metrics
            .iter()
            .any(|m| matches!(m.kind, MetricKind::MirrorSuccessRate { .. }));
        if !wanted {
            return Err("no mirror metric".into());
        }
        let Some(counters) = &self.mirror else {
            return Err(
                "this platform does not count mirrored copies (on Kubernetes the \
                        cluster's router copies them; judge the shadow with a prometheus metric)"
                    .into(),
            );
        };
        let all = counters
            .read()
            .await
            .map_err(|e| format!("the mirror counters could not be read: {e}"))?;
        let now = all.into_iter().find(|stats| stats.version == self.new);
        let mut before = lock(&self.mirror_before);
        let Some(now) = now else {
            *before = None;
            return Err(format!("no mirror route to {} is set", self.new));
        };
        // A mirror set anew counts from zero again.
        let copies = match before.as_ref() {
            Some(was) if now.sent >= was.sent => now.since(was),
            _ => now.clone(),
        };
        *before = Some(now);
        Ok(copies)
    }

    /// `zdd status`: each metric's verdicts so far.
    fn show(&self, what: &str, tallies: &BTreeMap<String, Tally>) {
        let metrics: Vec<String> = tallies
            .iter()
            .map(|(name, t)| {
                format!(
                    "{name} {} pass, {} fail, {} inconclusive",
                    t.passed, t.failed, t.inconclusive
                )
            })
            .collect();
        let line = format!("{what}: {}", metrics.join("; "));
        self.control.update(|s| s.analysis = Some(line));
    }
}

/// The background analysis; dropping it stops the measurements.
pub struct Background {
    task: tokio::task::JoinHandle<()>,
    analysis: Analysis,
}

impl Background {
    /// Waits until every metric has passed at least once (an analysis that measured nothing, or
    /// only inconclusively, is not a pass), then stops the measurements. A metric over its
    /// limits meanwhile interrupts the wait like any step.
    pub async fn finish<P: Platform>(self, engine: &Engine<'_, P>) -> Result<(), EngineError> {
        let all_passed = || {
            let passed = lock(&self.analysis.passed_once);
            self.analysis
                .spec
                .metrics
                .iter()
                .all(|metric| passed.contains(&metric.name))
        };
        while !all_passed() {
            if self.task.is_finished() {
                return Err(EngineError::Other(
                    "the background analysis ended before every metric passed".into(),
                ));
            }
            engine
                .guarded(tokio::time::sleep(Duration::from_millis(100)))
                .await?;
        }
        self.task.abort();
        Ok(())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.task.abort();
    }
}

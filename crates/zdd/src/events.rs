//! What happened during a run, typed, on the same clock as the probe's samples, so a report can
//! say which step caused which failures.
//!
//! Each [`Event`] has one human line ([`Display`](std::fmt::Display)) and a `kind` in JSON. The
//! events file (`events.jsonl`) and the JSON results hold one [`Record`] per event:
//! `{"t_s": 1.25, "kind": "scaled", "label": "scale v2 to 3", "version": "v2", "replicas": 3}`;
//! the HTML report reads `t_s` and `label` (docs/probe-report.md). Code and tests match the
//! variants, never the wording.
//!
//! The engine and the run log what they do; a platform logs only what the engine cannot see
//! (its replicas' lives, the endpoints it published, the watches it resumed).

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};

use crate::model::{MirrorStats, RequestMatch, Routing};
use crate::sync::lock;

/// Something that happened in a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    // The run.
    /// The old version is being deployed before the rollout starts.
    Deploying {
        version: String,
        replicas: u32,
    },
    /// The probe's traffic started.
    TrafficStarted {
        rate: u32,
        url: String,
    },
    /// No traffic: the main route is not reachable from here.
    TrafficNotMeasured {
        #[serde(serialize_with = "seconds")]
        settle_delay: Duration,
    },
    RolloutStarted {
        from: String,
        to: String,
        strategy: String,
    },
    RolloutSucceeded,
    /// A cluster upgrade: `version` keeps serving while each node is drained and returned.
    ClusterUpgradeStarted {
        version: String,
        nodes: Vec<String>,
    },
    ClusterUpgradeFinished,
    /// A drain failed (an eviction blocked too long): the upgrade stops; nothing to roll back.
    ClusterUpgradeFailed {
        reason: String,
    },
    /// Ctrl-C or SIGTERM: stopped at once, no rollback.
    RolloutInterrupted {
        signal: String,
    },
    /// A step failed, `zdd abort` or the budget: the rollback starts.
    RolloutFailed {
        reason: String,
    },
    RolledBack {
        version: String,
    },
    RollbackFailed {
        reason: String,
    },
    TrafficStopped {
        total: u64,
        failed: u64,
    },

    // The engine's steps.
    StepStarted {
        step: String,
    },
    StepFinished {
        step: String,
    },
    Scaled {
        version: String,
        replicas: u32,
    },
    RoutingSet {
        routing: Routing,
    },
    /// A managed route: requests that match go to `version` whatever the weights.
    HeaderRouteSet {
        name: String,
        version: String,
        matches: Vec<RequestMatch>,
    },
    HeaderRouteRemoved {
        name: String,
    },
    /// A copy of `percent` % of the requests (those `matches` takes, all when empty) goes to
    /// `version`, its answers discarded.
    MirrorRouteSet {
        name: String,
        version: String,
        percent: u32,
        matches: Vec<RequestMatch>,
    },
    MirrorRouteRemoved {
        name: String,
    },
    /// The mirror target's counters, read just before its mirror route changed or went.
    MirrorMeasured {
        name: String,
        stats: MirrorStats,
    },
    Paused,
    Promoted,
    /// A version answered through the preview route, as many times in a row as asked.
    PreviewAnswers {
        version: String,
    },
    /// The platform has no preview route zdd can reach: the check was skipped.
    PreviewNotChecked {
        version: String,
    },
    /// The main route answers from this version.
    MainServes {
        version: String,
    },
    /// The main route is not reachable from here: not checked.
    MainNotChecked {
        version: String,
    },
    /// The data-plane check passed: no request reached `version` for a whole window.
    Drained {
        version: String,
        #[serde(serialize_with = "seconds")]
        window: Duration,
        requests: u64,
        #[serde(serialize_with = "seconds")]
        waited: Duration,
    },
    /// No traffic to check with: a fixed delay instead.
    DrainNotChecked {
        version: String,
        #[serde(serialize_with = "seconds")]
        delay: Duration,
    },
    /// The data-plane check failed during a rollback: the version goes anyway.
    DrainCheckFailed {
        version: String,
        reason: String,
    },
    /// A drained node is down (its upgrade) for this long before it is returned.
    NodeDown {
        node: String,
        #[serde(serialize_with = "seconds")]
        downtime: Duration,
    },

    // Analysis (docs/analysis.md).
    /// Measurements of the new version start: one of each metric per interval. `what`: the
    /// background analysis, or the analysis step.
    AnalysisStarted {
        what: String,
        metrics: Vec<String>,
        #[serde(serialize_with = "seconds")]
        interval: Duration,
    },
    /// One metric measured over one interval (`from_s..to_s`, the run's clock).
    AnalysisMeasured {
        metric: String,
        verdict: Verdict,
        /// The measured value (a share 0..1, milliseconds, a ratio, the query's value, an exit
        /// code); `None` when nothing could be measured.
        value: Option<f64>,
        /// The bound it was held to, as written for people (`>= 99.5%`).
        threshold: String,
        /// Why, in a few words (the value with its unit, or what was missing).
        detail: String,
        from_s: f64,
        to_s: f64,
    },

    // What only a platform sees.
    /// The scheduler bound the pod to a node.
    PodScheduled {
        pod: String,
        node: String,
    },
    /// No node takes the pod yet (a pod's `FailedScheduling` event): it stays pending.
    PodPending {
        pod: String,
        reason: String,
    },
    /// No new pod is scheduled on the node any more (`kubectl cordon`, the start of a drain).
    NodeCordoned {
        node: String,
    },
    /// The eviction API accepted the eviction: the pod terminates (preStop, grace period) and its
    /// ReplicaSet creates a replacement.
    PodEvicted {
        pod: String,
        node: String,
    },
    /// The eviction API refused (HTTP 429): evicting the pod would leave fewer healthy pods than
    /// the disruption budget needs. The drainer retries, as `kubectl drain` does.
    EvictionRefused {
        pod: String,
        budget: String,
        healthy: u32,
        needed: u32,
    },
    /// Every pod of the node was evicted and is gone.
    NodeDrained {
        node: String,
        pods: Vec<String>,
    },
    /// The node takes pods again (`kubectl uncordon`, a node back from its upgrade).
    NodeReturned {
        node: String,
    },
    PodStarted {
        pod: String,
    },
    PodReady {
        pod: String,
    },
    PodUnready {
        pod: String,
    },
    PodTerminating {
        pod: String,
    },
    /// The termination sequence signalled the replica's process group: `SIGTERM` after the preStop
    /// sleep, `SIGKILL` when the grace period ended.
    PodSignalled {
        pod: String,
        signal: String,
    },
    PodExited {
        pod: String,
        how: PodExit,
    },
    PodFailedToStart {
        pod: String,
        error: String,
    },
    /// Liveness failed: the process is stopped and started again.
    PodRestartedByLiveness {
        pod: String,
    },
    /// The router now serves these ready replicas of `version` (local endpoint controller).
    EndpointsPublished {
        version: String,
        pods: Vec<String>,
    },
    EndpointsNotApplied {
        error: String,
    },
    /// Kubernetes: the Deployment reports this many ready replicas.
    ReplicasReady {
        version: String,
        ready: u32,
        desired: u32,
    },
    /// Kubernetes: the version's Service has this many ready endpoints.
    ServiceEndpointsReady {
        version: String,
        service: String,
        endpoints: usize,
    },
    /// Kubernetes: pods of `version` left, at most `wanted`.
    PodsLeft {
        version: String,
        pods: u32,
        wanted: u32,
    },
    /// Kubernetes: the preview Service is gone with the version it selected.
    PreviewServiceDeleted {
        service: String,
        version: String,
    },
    /// Kubernetes: a watch broke and resumed from its last resourceVersion.
    WatchResumed {
        what: String,
    },
    PlatformShutDown,
}

/// What one measurement says of the new version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Too little data, or a source that did not answer: neither pass nor fail.
    Inconclusive,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Inconclusive => "inconclusive",
        })
    }
}

/// How a replica's process ended; written `code 0`, `signal SIGKILL` (also in JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodExit {
    Code(i32),
    /// The signal's name, `SIGKILL`.
    Signal(String),
    /// The wait itself failed.
    Unknown(String),
}

impl fmt::Display for PodExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PodExit::Code(code) => write!(f, "code {code}"),
            PodExit::Signal(signal) => write!(f, "signal {signal}"),
            PodExit::Unknown(why) => write!(f, "unknown: {why}"),
        }
    }
}

impl Serialize for PodExit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A duration as seconds in JSON (`"window": 0.5`).
pub(crate) fn seconds<S: Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let human = |d: &Duration| humantime::format_duration(*d).to_string();
        match self {
            Event::Deploying { version, replicas } => {
                write!(f, "deploying {version} ({replicas} replicas)")
            }
            Event::TrafficStarted { rate, url } => write!(f, "traffic: {rate} requests/s to {url}"),
            Event::TrafficNotMeasured { settle_delay } => write!(
                f,
                "traffic: not measured (main route not reachable from here); fixed {} before \
                 each scale-down",
                human(settle_delay)
            ),
            Event::RolloutStarted { from, to, strategy } => {
                write!(f, "rollout {from} → {to} ({strategy}) started")
            }
            Event::RolloutSucceeded => f.write_str("rollout succeeded"),
            Event::ClusterUpgradeStarted { version, nodes } => write!(
                f,
                "cluster upgrade of {} started ({version} keeps serving)",
                nodes.join(", ")
            ),
            Event::ClusterUpgradeFinished => f.write_str("cluster upgrade finished"),
            Event::ClusterUpgradeFailed { reason } => {
                write!(f, "cluster upgrade failed: {reason}")
            }
            Event::RolloutInterrupted { signal } => write!(f, "rollout interrupted by {signal}"),
            Event::RolloutFailed { reason } => write!(f, "rollout failed: {reason}; rolling back"),
            Event::RolledBack { version } => write!(f, "rolled back to {version}"),
            Event::RollbackFailed { reason } => write!(f, "rollback failed: {reason}"),
            Event::TrafficStopped { total, failed } => {
                write!(f, "traffic stopped: {total} requests, {failed} failed")
            }
            Event::StepStarted { step } => write!(f, "{step} started"),
            Event::StepFinished { step } => write!(f, "{step} finished"),
            Event::Scaled { version, replicas } => write!(f, "scale {version} to {replicas}"),
            Event::RoutingSet { routing } => write!(f, "routing: {routing}"),
            Event::HeaderRouteSet {
                name,
                version,
                matches,
            } => write!(
                f,
                "header route {name}: {} → {version}",
                crate::model::describe_matches(matches)
            ),
            Event::HeaderRouteRemoved { name } => write!(f, "header route {name} removed"),
            Event::MirrorRouteSet {
                name,
                version,
                percent,
                matches,
            } => {
                write!(f, "mirror route {name}: {percent}% ")?;
                if !matches.is_empty() {
                    write!(f, "of {} ", crate::model::describe_matches(matches))?;
                }
                write!(f, "copied to {version}")
            }
            Event::MirrorRouteRemoved { name } => write!(f, "mirror route {name} removed"),
            Event::MirrorMeasured { name, stats } => write!(
                f,
                "mirror {name}: {} copies to {}, {} ok, {} failed, {} dropped, p50 {:.1} ms, \
                 p99 {:.1} ms",
                stats.sent,
                stats.version,
                stats.ok,
                stats.failed(),
                stats.dropped,
                stats.p50_ms,
                stats.p99_ms
            ),
            Event::Paused => f.write_str("paused until zdd promote"),
            Event::Promoted => f.write_str("promoted"),
            Event::PreviewAnswers { version } => {
                write!(f, "data plane: preview route answers from {version}")
            }
            Event::PreviewNotChecked { version } => write!(
                f,
                "no preview route reachable from here: not checked that {version} is reachable"
            ),
            Event::MainServes { version } => write!(f, "{version} serves the main route"),
            Event::MainNotChecked { version } => write!(
                f,
                "main route not checked (not reachable from here): {version} is ready"
            ),
            Event::Drained {
                version,
                window,
                requests,
                waited,
            } => write!(
                f,
                "data plane: no request reached {version} for {} ({requests} requests, checked \
                 in {:.1}s)",
                human(window),
                waited.as_secs_f64()
            ),
            Event::DrainNotChecked { version, delay } => write!(
                f,
                "data plane not checked: waiting a fixed {} before scaling {version} down",
                human(delay)
            ),
            Event::DrainCheckFailed { version, reason } => {
                write!(
                    f,
                    "data plane check failed ({reason}); scaling {version} down anyway"
                )
            }
            Event::NodeDown { node, downtime } => {
                write!(f, "node {node} down for {}", human(downtime))
            }
            Event::AnalysisStarted {
                what,
                metrics,
                interval,
            } => write!(
                f,
                "{what}: {} every {}",
                metrics.join(", "),
                human(interval)
            ),
            Event::AnalysisMeasured {
                metric,
                verdict,
                threshold,
                detail,
                ..
            } => write!(
                f,
                "analysis {metric}: {verdict}: {detail} (wanted {threshold})"
            ),
            Event::PodScheduled { pod, node } => write!(f, "pod {pod} scheduled on {node}"),
            Event::PodPending { pod, reason } => write!(f, "pod {pod} pending: {reason}"),
            Event::NodeCordoned { node } => write!(f, "node {node} cordoned"),
            Event::PodEvicted { pod, node } => write!(f, "pod {pod} evicted from {node}"),
            Event::EvictionRefused {
                pod,
                budget,
                healthy,
                needed,
            } => write!(
                f,
                "eviction of {pod} refused (429): the disruption budget ({budget}) needs \
                 {needed} healthy pods and has {healthy}"
            ),
            Event::NodeDrained { node, pods } if pods.is_empty() => {
                write!(f, "node {node} drained (no pod to evict)")
            }
            Event::NodeDrained { node, pods } => {
                write!(f, "node {node} drained (evicted {})", pods.join(", "))
            }
            Event::NodeReturned { node } => write!(f, "node {node} returned (schedulable)"),
            Event::PodStarted { pod } => write!(f, "pod {pod} started"),
            Event::PodReady { pod } => write!(f, "pod {pod} ready"),
            Event::PodUnready { pod } => write!(f, "pod {pod} unready"),
            Event::PodTerminating { pod } => write!(f, "pod {pod} terminating"),
            Event::PodSignalled { pod, signal } => write!(f, "pod {pod}: {signal}"),
            Event::PodExited { pod, how } => write!(f, "pod {pod} exited ({how})"),
            Event::PodFailedToStart { pod, error } => {
                write!(f, "pod {pod} failed to start: {error}")
            }
            Event::PodRestartedByLiveness { pod } => write!(f, "pod {pod} restarted (liveness)"),
            Event::EndpointsPublished { version, pods } => {
                write!(f, "endpoints {version}: [{}]", pods.join(", "))
            }
            Event::EndpointsNotApplied { error } => write!(f, "endpoints not applied: {error}"),
            Event::ReplicasReady {
                version,
                ready,
                desired,
            } => write!(f, "{version}: {ready}/{desired} replicas ready"),
            Event::ServiceEndpointsReady {
                version,
                service,
                endpoints,
            } => write!(
                f,
                "{version}: {endpoints} ready endpoints in service {service}"
            ),
            Event::PodsLeft {
                version,
                pods,
                wanted,
            } => write!(f, "{version}: {pods} pods left (at most {wanted} wanted)"),
            Event::PreviewServiceDeleted { service, version } => {
                write!(f, "preview service {service} deleted with {version}")
            }
            Event::WatchResumed { what } => write!(f, "watch of {what} broke, resumed"),
            Event::PlatformShutDown => f.write_str("platform shut down"),
        }
    }
}

/// One event at its time: seconds since the run's time zero (the probe's too).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub t_s: f64,
    pub event: Event,
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Line<'a> {
            t_s: f64,
            label: String,
            #[serde(flatten)]
            event: &'a Event,
        }
        Line {
            t_s: self.t_s,
            label: self.event.to_string(),
            event: &self.event,
        }
        .serialize(serializer)
    }
}

impl Record {
    /// The mark this event leaves on a probe report's charts.
    pub fn mark(&self) -> zdd_probe::EventMark {
        zdd_probe::EventMark {
            t_s: self.t_s,
            label: self.event.to_string(),
        }
    }
}

/// A cheap-to-clone handle that records events. Every part of a run (engine, platform) holds one;
/// they share `origin`, which is also the probe's time zero.
#[derive(Clone)]
pub struct EventLog {
    origin: Instant,
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    records: Vec<Record>,
    /// One JSON line per record (the events file).
    sink: Option<Box<dyn Write + Send>>,
}

impl EventLog {
    pub fn new(origin: Instant) -> Self {
        EventLog {
            origin,
            inner: Arc::new(Mutex::new(Inner {
                records: Vec::new(),
                sink: None,
            })),
        }
    }

    /// Also writes every record as a JSON line to `sink`.
    pub fn with_sink(origin: Instant, sink: Box<dyn Write + Send>) -> Self {
        let log = Self::new(origin);
        lock(&log.inner).sink = Some(sink);
        log
    }

    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Records `event` at the current time.
    pub fn emit(&self, event: Event) {
        let record = Record {
            t_s: self.origin.elapsed().as_secs_f64(),
            event,
        };
        tracing::info!(t_s = format!("{:.3}", record.t_s), "{}", record.event);
        let mut inner = lock(&self.inner);
        if let (Some(sink), Ok(line)) = (inner.sink.as_mut(), serde_json::to_string(&record)) {
            // An unwritable events file must not stop a rollout; the records stay in memory.
            let _ = writeln!(sink, "{line}").and_then(|_| sink.flush());
        }
        inner.records.push(record);
    }

    /// Every record so far, oldest first.
    pub fn snapshot(&self) -> Vec<Record> {
        lock(&self.inner).records.clone()
    }

    /// The events so far, oldest first, without their times.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.inner)
            .records
            .iter()
            .map(|record| record.event.clone())
            .collect()
    }
}

//! The rollout spec: one YAML file per rollout (docs/spec.md).
//!
//! Parsing happens in two passes over the same text: serde (through `serde_path_to_error`, so a
//! type error or an unknown field names its field path) into the `raw` types, whose
//! [`Spanned`] fields keep their line and column, then [`validate`](raw::RawSpec) into [`Spec`],
//! whose semantic errors (a weight of 150, maxSurge and maxUnavailable both 0, ...) point at the
//! value they are about. Every error is one [`SpecError`]: `file:line:column: field.path: message`.

pub mod analysis;
mod analysis_check;
mod raw;
mod wording;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

pub use crate::model::IntOrPercent;
use crate::model::{DisruptionBudget, ProbeSpec, RequestMatch, Scheduling, VersionTemplate};

/// A validated rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// Object names on Kubernetes (the `app` label); the run directory's name locally.
    pub name: String,
    pub app: AppSpec,
    pub from: VersionSpec,
    /// `None` for a cluster upgrade, which changes the nodes, not the app.
    pub to: Option<VersionSpec>,
    pub strategy: Strategy,
    pub traffic: TrafficSpec,
    pub budget: BudgetSpec,
    pub local: LocalSpec,
    pub data_plane_check: DataPlaneCheck,
    /// The new version judged by measurements (docs/analysis.md).
    pub analysis: Option<analysis::AnalysisSpec>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AppSpec {
    /// Program and arguments (`{port}` is replaced); empty when each version has its own.
    pub command: Vec<String>,
    pub image: Option<String>,
    pub replicas: u32,
    pub env: BTreeMap<String, String>,
    pub readiness: ProbeSpec,
    pub liveness: Option<ProbeSpec>,
    pub pre_stop_sleep: Duration,
    pub termination_grace_period: Duration,
    /// Pod anti-affinity and topology spread, for every version.
    pub scheduling: Scheduling,
    /// The app's PodDisruptionBudget (every version counts); `None`: no budget.
    pub disruption_budget: Option<DisruptionBudget>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VersionSpec {
    pub name: String,
    /// Added to (and overriding) the app's environment.
    pub env: BTreeMap<String, String>,
    pub command: Option<Vec<String>>,
    pub image: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    Recreate,
    RollingUpdate {
        max_surge: IntOrPercent,
        max_unavailable: IntOrPercent,
        min_ready: Duration,
    },
    BlueGreen {
        /// `false`: wait for `zdd promote` after the preview checks.
        auto_promote: bool,
        /// Requests sent through the preview route; each must be answered by the new version.
        preview_checks: u32,
    },
    /// Canary by replicas (`trafficRouting: replicas`): both versions behind one route, steps
    /// set the replica counts.
    CanaryReplicas {
        steps: Vec<CanaryStep>,
    },
    /// Canary by weight (`trafficRouting: weight`): steps set the share of traffic the new
    /// version gets.
    CanaryWeight {
        steps: Vec<CanaryStep>,
    },
    /// Not a rollout: the nodes are drained, kept down and returned one at a time while the old
    /// version keeps serving (a cluster upgrade). Local platform only.
    ClusterUpgrade {
        /// How long a drained node stays down (its upgrade) before it takes replicas again.
        node_downtime: Duration,
        /// An eviction refused (by the disruption budget) for longer than this fails the upgrade.
        eviction_timeout: Duration,
    },
}

impl Strategy {
    /// The name `zdd demo` and the reports use.
    pub fn kind(&self) -> &'static str {
        match self {
            Strategy::Recreate => "recreate",
            Strategy::RollingUpdate { .. } => "rolling-update",
            Strategy::BlueGreen { .. } => "blue-green",
            Strategy::CanaryReplicas { .. } => "canary-replicas",
            // Managed routes make a canary by weight an A/B test or a shadow.
            Strategy::CanaryWeight { steps } => {
                let sets = |mirror: bool| {
                    steps.iter().any(|step| match step {
                        CanaryStep::SetMirrorRoute { mirror: m, .. } => mirror && m.is_some(),
                        CanaryStep::SetHeaderRoute { matches, .. } => !mirror && matches.is_some(),
                        _ => false,
                    })
                };
                if sets(true) {
                    "shadow"
                } else if sets(false) {
                    "ab-header"
                } else {
                    "canary-weight"
                }
            }
            Strategy::ClusterUpgrade { .. } => "cluster-upgrade",
        }
    }

    /// A cluster upgrade changes no version: there is no new version and nothing to roll back.
    pub fn changes_version(&self) -> bool {
        !matches!(self, Strategy::ClusterUpgrade { .. })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum CanaryStep {
    SetReplicas {
        from: u32,
        to: u32,
    },
    SetWeight(u32),
    /// `None`: until `zdd promote`.
    Pause(Option<Duration>),
    /// Measures the `analysis:` metrics for this long; every metric must pass.
    Analysis(Duration),
    /// A managed route: requests that match go to the new version whatever the weights.
    /// `None`: the route of that name is removed.
    SetHeaderRoute {
        name: String,
        matches: Option<Vec<RequestMatch>>,
    },
    /// A copy of `percent` % of the requests (those `matches` takes; all when empty) goes to the
    /// new version, its answers discarded. `None`: the mirror route is removed.
    SetMirrorRoute {
        name: String,
        mirror: Option<MirrorSpec>,
    },
}

/// What `setMirrorRoute` copies.
#[derive(Clone, Debug, PartialEq)]
pub struct MirrorSpec {
    pub percent: u32,
    pub matches: Vec<RequestMatch>,
}

impl fmt::Display for CanaryStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CanaryStep::SetReplicas { from, to } => write!(f, "setReplicas from={from} to={to}"),
            CanaryStep::SetWeight(w) => write!(f, "setWeight {w}"),
            CanaryStep::Pause(Some(d)) => write!(f, "pause {}", humantime::format_duration(*d)),
            CanaryStep::Pause(None) => write!(f, "pause until promote"),
            CanaryStep::Analysis(d) => write!(f, "analysis {}", humantime::format_duration(*d)),
            CanaryStep::SetHeaderRoute {
                name,
                matches: Some(matches),
            } => write!(
                f,
                "setHeaderRoute {name} {}",
                crate::model::describe_matches(matches)
            ),
            CanaryStep::SetHeaderRoute {
                name,
                matches: None,
            } => write!(f, "setHeaderRoute {name} removed"),
            CanaryStep::SetMirrorRoute {
                name,
                mirror: Some(mirror),
            } => {
                write!(f, "setMirrorRoute {name} {}%", mirror.percent)?;
                if !mirror.matches.is_empty() {
                    write!(f, " of {}", crate::model::describe_matches(&mirror.matches))?;
                }
                Ok(())
            }
            CanaryStep::SetMirrorRoute { name, mirror: None } => {
                write!(f, "setMirrorRoute {name} removed")
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrafficSpec {
    pub rate: u32,
    pub path: String,
    /// Most requests the probe has in flight at once (each needs a connection of its own);
    /// `None`: derived from the rate, see [`TrafficSpec::connections_for`].
    pub connections: Option<u32>,
    /// Shares of the probe's requests sent with headers of their own (A/B testers).
    pub segments: Vec<TrafficSegment>,
}

/// `traffic.segments[]`: a named share of the probe's requests with headers (or a cookie).
#[derive(Clone, Debug, PartialEq)]
pub struct TrafficSegment {
    pub name: String,
    pub share_pct: f64,
    /// The headers, a cookie as `Cookie: name=value`.
    pub headers: Vec<(String, String)>,
}

impl TrafficSpec {
    /// The probe's connection limit for answers that may take up to `timeout`: as written, or
    /// enough for every request of a whole timeout (`rate × timeout`, at least 64), so that a
    /// slow answer shows as latency and only a request that really fails counts as failed.
    pub fn connections_for(&self, timeout: Duration) -> usize {
        self.connections.map_or_else(
            || ((f64::from(self.rate) * timeout.as_secs_f64()).ceil() as usize).max(64),
            |connections| connections as usize,
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BudgetSpec {
    /// Most failed requests allowed; `None`: no limit (the run only reports).
    pub max_failed: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LocalSpec {
    pub propagation_delay: Duration,
    /// Simulated nodes the replicas are scheduled onto.
    pub nodes: u32,
}

/// How the engine proves that no request reaches a version any more before scaling it to zero.
#[derive(Clone, Debug, PartialEq)]
pub struct DataPlaneCheck {
    /// How long, without interruption, traffic must flow and miss the old version.
    pub window: Duration,
    /// Fewest successful requests inside that window (traffic must really flow).
    pub min_requests: u64,
    /// Give up (and roll back) when the data plane does not converge in this time.
    pub timeout: Duration,
}

impl Default for DataPlaneCheck {
    fn default() -> Self {
        DataPlaneCheck {
            window: Duration::from_millis(500),
            min_requests: 20,
            timeout: Duration::from_secs(30),
        }
    }
}

impl Spec {
    /// Reads and validates a spec file.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| SpecError {
            file: file.clone(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read the spec: {err}"),
        })?;
        Spec::parse(&text, &file)
    }

    /// Parses and validates `text`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Spec, SpecError> {
        raw::parse(text, file)
    }

    /// The version as a platform runs it.
    pub fn template(&self, version: &VersionSpec) -> VersionTemplate {
        let mut env = self.app.env.clone();
        env.extend(version.env.clone());
        let min_ready = match self.strategy {
            Strategy::RollingUpdate { min_ready, .. } => min_ready,
            _ => Duration::ZERO,
        };
        VersionTemplate {
            name: version.name.clone(),
            command: version
                .command
                .clone()
                .unwrap_or_else(|| self.app.command.clone()),
            image: version.image.clone().or_else(|| self.app.image.clone()),
            env,
            readiness: self.app.readiness.clone(),
            liveness: self.app.liveness.clone(),
            pre_stop_sleep: self.app.pre_stop_sleep,
            termination_grace_period: self.app.termination_grace_period,
            min_ready,
            scheduling: self.app.scheduling,
        }
    }
}

/// A spec mistake, located in its file. Displays as `file:line:column: field.path: message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    pub file: String,
    /// 1-based; 0 when unknown (for example an unreadable file).
    pub line: u32,
    pub column: u32,
    /// The field path, for example `strategy.rollingUpdate.maxSurge`; empty for the whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

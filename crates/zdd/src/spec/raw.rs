//! The spec as written (serde types with locations) and its validation into [`Spec`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::analysis::{AnalysisSpec, RawAnalysis, RawAnalysisStep};
use super::wording;
use super::{
    AppSpec, BudgetSpec, CanaryStep, DataPlaneCheck, IntOrPercent, LocalSpec, MirrorSpec, Spec,
    SpecError, Strategy, TrafficSegment, TrafficSpec, VersionSpec,
};
use crate::model::{
    AntiAffinity, DisruptionBudget, ProbeSpec, RequestMatch, Scheduling, ValueMatch,
};

type Env = BTreeMap<String, String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSpec {
    name: Spanned<String>,
    app: Spanned<RawApp>,
    versions: Spanned<RawVersions>,
    strategy: Spanned<RawStrategy>,
    #[serde(default)]
    traffic: Option<RawTraffic>,
    #[serde(default)]
    budget: Option<RawBudget>,
    #[serde(default)]
    local: Option<RawLocal>,
    #[serde(default)]
    data_plane_check: Option<RawDataPlaneCheck>,
    #[serde(default)]
    analysis: Option<Spanned<RawAnalysis>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawApp {
    #[serde(default)]
    command: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    replicas: Option<Spanned<u32>>,
    #[serde(default)]
    env: Env,
    #[serde(default)]
    readiness_probe: Option<RawProbe>,
    #[serde(default)]
    liveness_probe: Option<RawProbe>,
    #[serde(default)]
    pre_stop: Option<RawPreStop>,
    #[serde(default)]
    termination_grace_period: Option<Spanned<String>>,
    #[serde(default)]
    pod_anti_affinity: Option<AntiAffinity>,
    #[serde(default)]
    topology_spread: Option<RawTopologySpread>,
    #[serde(default)]
    pod_disruption_budget: Option<RawDisruptionBudget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTopologySpread {
    #[serde(default)]
    max_skew: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDisruptionBudget {
    #[serde(default)]
    min_available: Option<Spanned<RawIntOrPercent>>,
    #[serde(default)]
    max_unavailable: Option<Spanned<RawIntOrPercent>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawProbe {
    #[serde(default)]
    path: Option<Spanned<String>>,
    #[serde(default)]
    period: Option<Spanned<String>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    failure_threshold: Option<Spanned<u32>>,
    #[serde(default)]
    success_threshold: Option<Spanned<u32>>,
    #[serde(default)]
    initial_delay: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPreStop {
    #[serde(default)]
    sleep: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawVersions {
    from: Spanned<RawVersion>,
    /// Absent only for a cluster upgrade.
    #[serde(default)]
    to: Option<Spanned<RawVersion>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawVersion {
    name: Spanned<String>,
    #[serde(default)]
    env: Env,
    #[serde(default)]
    command: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    image: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
enum RawStrategy {
    Recreate(RawEmpty),
    RollingUpdate(RawRollingUpdate),
    BlueGreen(RawBlueGreen),
    Canary(RawCanary),
    ClusterUpgrade(RawClusterUpgrade),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawClusterUpgrade {
    #[serde(default)]
    node_downtime: Option<Spanned<String>>,
    #[serde(default)]
    eviction_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmpty {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRollingUpdate {
    #[serde(default)]
    max_surge: Option<Spanned<RawIntOrPercent>>,
    #[serde(default)]
    max_unavailable: Option<Spanned<RawIntOrPercent>>,
    #[serde(default)]
    min_ready_seconds: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawIntOrPercent {
    Count(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawBlueGreen {
    #[serde(default)]
    auto_promote: Option<bool>,
    #[serde(default)]
    preview_checks: Option<u32>,
    #[serde(default)]
    pre_promotion_analysis: Option<Spanned<RawAnalysisStep>>,
    #[serde(default)]
    post_promotion_analysis: Option<Spanned<RawAnalysisStep>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCanary {
    #[serde(default)]
    traffic_routing: Option<TrafficRouting>,
    steps: Spanned<Vec<Spanned<RawStep>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
enum TrafficRouting {
    Replicas,
    Weight,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
enum RawStep {
    SetReplicas(RawSetReplicas),
    SetWeight(Spanned<i64>),
    Pause(Spanned<RawPause>),
    Analysis(Spanned<RawAnalysisStep>),
    SetHeaderRoute(Spanned<RawHeaderRoute>),
    SetMirrorRoute(Spanned<RawMirrorRoute>),
}

/// `setHeaderRoute: { name, match: [...] }`; without `match` the route is removed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderRoute {
    name: Spanned<String>,
    #[serde(default, rename = "match")]
    matches: Option<Spanned<Vec<Spanned<RawMatch>>>>,
}

/// `setMirrorRoute: { name, percentage, match }`; with neither the route is removed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirrorRoute {
    name: Spanned<String>,
    #[serde(default)]
    percentage: Option<Spanned<i64>>,
    #[serde(default, rename = "match")]
    matches: Option<Spanned<Vec<Spanned<RawMatch>>>>,
}

/// `{ header: X-Canary, exact: always }`, `{ cookie: flavour, regex: "b.*" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    cookie: Option<String>,
    #[serde(default)]
    exact: Option<String>,
    #[serde(default)]
    regex: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSetReplicas {
    from: u32,
    to: u32,
}

/// `pause: 5s`, `pause: { duration: 5s }` or `pause: {}` (until `zdd promote`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawPause {
    Short(String),
    Long(RawPauseLong),
}

/// An untagged variant refuses unknown keys only when its own type does.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPauseLong {
    #[serde(default)]
    duration: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTraffic {
    #[serde(default)]
    rate: Option<Spanned<u32>>,
    #[serde(default)]
    connections: Option<Spanned<u32>>,
    #[serde(default)]
    path: Option<Spanned<String>>,
    #[serde(default)]
    segments: Option<Vec<Spanned<RawSegment>>>,
}

/// `{ name: testers, share: 20%, headers: { X-Canary: always } }` or `cookie: flavour=b`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSegment {
    name: Spanned<String>,
    share: Spanned<RawIntOrPercent>,
    #[serde(default)]
    headers: Option<Spanned<Env>>,
    #[serde(default)]
    cookie: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawBudget {
    /// Absent: the default (0); `null`: no limit.
    #[serde(default, deserialize_with = "present")]
    max_failed: Option<Option<u64>>,
}

/// For a field where `null` means something: `Some(None)` when written as `null`, `None` when
/// absent (with `#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLocal {
    #[serde(default)]
    propagation_delay: Option<Spanned<String>>,
    #[serde(default)]
    nodes: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDataPlaneCheck {
    #[serde(default)]
    window: Option<Spanned<String>>,
    #[serde(default)]
    min_requests: Option<u64>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

/// Parses `text` and validates it.
pub(super) fn parse(text: &str, file: &str) -> Result<Spec, SpecError> {
    let mut field_path = String::new();
    let parsed: Result<RawSpec, serde_saphyr::Error> =
        serde_saphyr::with_deserializer_from_str(text, |de| {
            serde_path_to_error::deserialize(de).map_err(|err| {
                field_path = err.path().to_string();
                err.into_inner()
            })
        });
    let raw = parsed.map_err(|err| serde_error(file, &field_path, &err))?;
    Validator { file }.spec(raw)
}

fn serde_error(file: &str, field_path: &str, err: &serde_saphyr::Error) -> SpecError {
    let (line, column) = err
        .location()
        .map(|l| (l.line() as u32, l.column() as u32))
        .unwrap_or((0, 0));
    // serde-saphyr renders "error: line L column C: message"; keep only the message.
    let text = err.without_snippet().to_string();
    let first_line = text.lines().next().unwrap_or_default();
    let message = match first_line.strip_prefix("error: line ") {
        Some(rest) => rest.split_once(": ").map_or(rest, |(_, msg)| msg),
        None => first_line,
    };
    // `Spanned<T>` adds a `.value` level to the path that the file does not have.
    let path = field_path.replace(".value", "");
    let path = if path == "." { String::new() } else { path };
    let (path, message) = wording::in_users_words(&path, message);
    SpecError {
        file: file.to_string(),
        line,
        column,
        path,
        message,
    }
}

pub(super) struct Validator<'a> {
    file: &'a str,
}

impl Validator<'_> {
    pub(super) fn error<T>(
        &self,
        at: &Spanned<T>,
        path: &str,
        message: impl Into<String>,
    ) -> SpecError {
        SpecError {
            file: self.file.to_string(),
            line: at.referenced.line() as u32,
            column: at.referenced.column() as u32,
            path: path.to_string(),
            message: message.into(),
        }
    }

    pub(super) fn duration(
        &self,
        value: &Spanned<String>,
        path: &str,
    ) -> Result<Duration, SpecError> {
        humantime::parse_duration(value.value.trim()).map_err(|err| {
            self.error(
                value,
                path,
                format!(
                    "`{}` is not a duration ({err}); write it like 250ms, 5s or 1m",
                    value.value
                ),
            )
        })
    }

    pub(super) fn duration_or(
        &self,
        value: &Option<Spanned<String>>,
        path: &str,
        default: Duration,
    ) -> Result<Duration, SpecError> {
        value
            .as_ref()
            .map_or(Ok(default), |value| self.duration(value, path))
    }

    /// A name usable as a Kubernetes label value and object name (DNS-1123 label).
    pub(super) fn dns_label(
        &self,
        value: &Spanned<String>,
        path: &str,
    ) -> Result<String, SpecError> {
        let name = &value.value;
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if valid {
            Ok(name.clone())
        } else {
            Err(self.error(
                value,
                path,
                format!(
                    "`{name}` must be 1 to 63 lowercase letters, digits or '-', \
                     starting and ending with a letter or digit"
                ),
            ))
        }
    }

    pub(super) fn command(
        &self,
        value: &Option<Spanned<Vec<String>>>,
        path: &str,
    ) -> Result<Option<Vec<String>>, SpecError> {
        match value {
            None => Ok(None),
            Some(cmd) if cmd.value.is_empty() || cmd.value[0].trim().is_empty() => Err(self.error(
                cmd,
                path,
                "the command is empty; give the program and its arguments",
            )),
            Some(cmd) => Ok(Some(cmd.value.clone())),
        }
    }

    fn spec(&self, raw: RawSpec) -> Result<Spec, SpecError> {
        let name = self.dns_label(&raw.name, "name")?;
        let app = self.app(&raw.app)?;
        let from = self.version(&raw.versions.value.from, "versions.from")?;
        let strategy = self.strategy(&raw.strategy, app.replicas)?;
        let to = match (&raw.versions.value.to, strategy.changes_version()) {
            (None, true) => {
                return Err(self.error(
                    &raw.versions,
                    "versions.to",
                    "missing: `to` is required here (the version to roll out)",
                ));
            }
            (Some(to), false) => {
                return Err(self.error(
                    to,
                    "versions.to",
                    "a cluster upgrade changes the nodes, not the app: it runs versions.from \
                     only; remove versions.to",
                ));
            }
            (None, false) => None,
            (Some(to), true) => Some((self.version(to, "versions.to")?, to)),
        };
        if let Some((to, spanned)) = &to
            && from.name == to.name
        {
            return Err(self.error(
                &spanned.value.name,
                "versions.to.name",
                format!("`{}` is also the name of versions.from", to.name),
            ));
        }
        if app.command.is_empty() {
            let versions = std::iter::once((&from, &raw.versions.value.from, "versions.from"))
                .chain(
                    to.as_ref()
                        .map(|(to, spanned)| (to, *spanned, "versions.to")),
                );
            for (version, spanned, path) in versions {
                if version.command.is_none() {
                    return Err(self.error(
                        &raw.app,
                        "app.command",
                        format!(
                            "missing: give the program to run, for example [\"zdd\", \"serve\"] \
                             (or a command for {path} at line {})",
                            spanned.referenced.line()
                        ),
                    ));
                }
            }
        }
        let to = to.map(|(to, _)| to);
        let traffic = match &raw.traffic {
            None => TrafficSpec {
                rate: 200,
                path: "/".into(),
                connections: None,
                segments: Vec::new(),
            },
            Some(traffic) => {
                let rate = match &traffic.rate {
                    None => 200,
                    Some(rate) if rate.value == 0 || rate.value > 100_000 => {
                        return Err(self.error(
                            rate,
                            "traffic.rate",
                            format!("{} is outside 1..=100000 requests per second", rate.value),
                        ));
                    }
                    Some(rate) => rate.value,
                };
                let path = self.http_path(&traffic.path, "traffic.path", "/")?;
                let connections = match &traffic.connections {
                    Some(n) if n.value == 0 || n.value > 100_000 => {
                        return Err(self.error(
                            n,
                            "traffic.connections",
                            format!("{} is outside 1..=100000 connections", n.value),
                        ));
                    }
                    other => other.as_ref().map(|n| n.value),
                };
                TrafficSpec {
                    rate,
                    path,
                    connections,
                    segments: self.segments(traffic.segments.as_deref().unwrap_or_default())?,
                }
            }
        };
        let budget = BudgetSpec {
            max_failed: raw
                .budget
                .as_ref()
                .and_then(|b| b.max_failed)
                .unwrap_or(Some(0)),
        };
        let local = self.local(raw.local.as_ref())?;
        let defaults = DataPlaneCheck::default();
        let data_plane_check = match &raw.data_plane_check {
            None => defaults,
            Some(check) => DataPlaneCheck {
                window: self.duration_or(
                    &check.window,
                    "dataPlaneCheck.window",
                    defaults.window,
                )?,
                min_requests: check.min_requests.unwrap_or(defaults.min_requests),
                timeout: self.duration_or(
                    &check.timeout,
                    "dataPlaneCheck.timeout",
                    defaults.timeout,
                )?,
            },
        };
        let analysis = self.spec_analysis(&raw, &strategy)?;
        Ok(Spec {
            name,
            app,
            from,
            to,
            strategy,
            traffic,
            budget,
            local,
            data_plane_check,
            analysis,
        })
    }

    /// The `analysis:` block, and the canary's analysis steps that need it.
    fn spec_analysis(
        &self,
        raw: &RawSpec,
        strategy: &Strategy,
    ) -> Result<Option<AnalysisSpec>, SpecError> {
        let steps = match strategy {
            Strategy::CanaryReplicas { steps } | Strategy::CanaryWeight { steps } => steps.len(),
            _ => 0,
        };
        let mut analysis = raw
            .analysis
            .as_ref()
            .map(|analysis| self.analysis(analysis, steps))
            .transpose()?;
        if let RawStrategy::BlueGreen(bg) = &raw.strategy.value {
            let base = "strategy.blueGreen";
            let sides = [
                (&bg.pre_promotion_analysis, "prePromotionAnalysis"),
                (&bg.post_promotion_analysis, "postPromotionAnalysis"),
            ];
            for (side, name) in sides {
                let Some(step) = side else { continue };
                let path = format!("{base}.{name}");
                let duration = self.analysis_duration(&step.value, &path)?;
                let Some(analysis) = analysis.as_mut() else {
                    return Err(self.error(
                        step,
                        &path,
                        "it measures the metrics of the spec's `analysis:` block; add one",
                    ));
                };
                match name {
                    "prePromotionAnalysis" => analysis.pre_promotion = Some(duration),
                    _ => analysis.post_promotion = Some(duration),
                }
            }
        }
        if let RawStrategy::Canary(canary) = &raw.strategy.value
            && analysis.is_none()
            && let Some((index, step)) = canary
                .steps
                .value
                .iter()
                .enumerate()
                .find(|(_, step)| matches!(step.value, RawStep::Analysis(_)))
        {
            return Err(self.error(
                step,
                &format!("strategy.canary.steps[{index}].analysis"),
                "an analysis step measures the metrics of the spec's `analysis:` block; add one",
            ));
        }
        // An analysis block that no part of the strategy runs would be a silent promise.
        if let (Some(at), Some(analysis)) = (&raw.analysis, &analysis) {
            let unused = match strategy {
                Strategy::Recreate | Strategy::ClusterUpgrade { .. } => Some(format!(
                    "{} runs no analysis (canary, blueGreen and rollingUpdate do)",
                    strategy.kind()
                )),
                Strategy::BlueGreen { .. }
                    if analysis.pre_promotion.is_none() && analysis.post_promotion.is_none() =>
                {
                    Some(
                        "blue-green measures in strategy.blueGreen.prePromotionAnalysis or \
                         postPromotionAnalysis; give one"
                            .to_string(),
                    )
                }
                _ => None,
            };
            if let Some(message) = unused {
                return Err(self.error(at, "analysis", message));
            }
        }
        Ok(analysis)
    }

    fn local(&self, raw: Option<&RawLocal>) -> Result<LocalSpec, SpecError> {
        let propagation_delay = Duration::from_secs(1);
        let Some(local) = raw else {
            return Ok(LocalSpec {
                propagation_delay,
                nodes: 1,
            });
        };
        let nodes = match &local.nodes {
            None => 1,
            Some(n) if n.value == 0 || n.value > 100 => {
                return Err(self.error(
                    n,
                    "local.nodes",
                    format!("{} is outside 1..=100 nodes", n.value),
                ));
            }
            Some(n) => n.value,
        };
        Ok(LocalSpec {
            propagation_delay: self.duration_or(
                &local.propagation_delay,
                "local.propagationDelay",
                propagation_delay,
            )?,
            nodes,
        })
    }

    fn http_path(
        &self,
        value: &Option<Spanned<String>>,
        path: &str,
        default: &str,
    ) -> Result<String, SpecError> {
        match value {
            None => Ok(default.to_string()),
            Some(p) if !p.value.starts_with('/') => {
                Err(self.error(p, path, format!("`{}` must start with '/'", p.value)))
            }
            Some(p) => Ok(p.value.clone()),
        }
    }

    fn app(&self, raw: &Spanned<RawApp>) -> Result<AppSpec, SpecError> {
        let app = &raw.value;
        let command = self
            .command(&app.command, "app.command")?
            .unwrap_or_default();
        let replicas = match &app.replicas {
            None => 1,
            Some(r) if r.value == 0 => {
                return Err(self.error(r, "app.replicas", "must be at least 1"));
            }
            Some(r) => r.value,
        };
        let readiness = self.probe(
            app.readiness_probe.as_ref(),
            "app.readinessProbe",
            ProbeSpec::readiness("/"),
        )?;
        let liveness = match &app.liveness_probe {
            None => None,
            Some(probe) => Some(self.probe(
                Some(probe),
                "app.livenessProbe",
                ProbeSpec {
                    path: "/".into(),
                    period: Duration::from_secs(1),
                    timeout: Duration::from_secs(1),
                    failure_threshold: 3,
                    success_threshold: 1,
                    initial_delay: Duration::ZERO,
                },
            )?),
        };
        let pre_stop = app.pre_stop.as_ref().and_then(|p| p.sleep.as_ref());
        let pre_stop_sleep =
            self.duration_or(&pre_stop.cloned(), "app.preStop.sleep", Duration::ZERO)?;
        let termination_grace_period = self.duration_or(
            &app.termination_grace_period,
            "app.terminationGracePeriod",
            Duration::from_secs(30),
        )?;
        // Checked on the values in force, defaults included: a preStop sleep longer than the
        // default grace period is as wrong as one longer than a written one.
        if !pre_stop_sleep.is_zero() && termination_grace_period <= pre_stop_sleep {
            let message = format!(
                "the grace period ({}) must be longer than the preStop sleep ({}): it counts from \
                 the start of preStop; raise terminationGracePeriod or shorten the sleep",
                humantime::format_duration(termination_grace_period),
                humantime::format_duration(pre_stop_sleep)
            );
            return Err(match (&app.termination_grace_period, pre_stop) {
                (Some(grace), _) => self.error(grace, "app.terminationGracePeriod", message),
                (None, Some(sleep)) => self.error(sleep, "app.preStop.sleep", message),
                (None, None) => unreachable!("a non-zero sleep was written"),
            });
        }
        let max_skew = match app.topology_spread.as_ref().map(|t| &t.max_skew) {
            None => None,
            Some(None) => Some(1),
            Some(Some(skew)) if skew.value == 0 => {
                return Err(self.error(skew, "app.topologySpread.maxSkew", "must be at least 1"));
            }
            Some(Some(skew)) => Some(skew.value),
        };
        Ok(AppSpec {
            command,
            image: app.image.clone(),
            replicas,
            env: app.env.clone(),
            readiness,
            liveness,
            pre_stop_sleep,
            termination_grace_period,
            scheduling: Scheduling {
                anti_affinity: app.pod_anti_affinity.unwrap_or_default(),
                max_skew,
            },
            disruption_budget: self.disruption_budget(app.pod_disruption_budget.as_ref())?,
        })
    }

    /// `{}` is `maxUnavailable: 1` (the manifests' budget); one of the two, never both.
    fn disruption_budget(
        &self,
        raw: Option<&RawDisruptionBudget>,
    ) -> Result<Option<DisruptionBudget>, SpecError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let base = "app.podDisruptionBudget";
        Ok(Some(match (&raw.min_available, &raw.max_unavailable) {
            (Some(_), Some(max)) => {
                return Err(self.error(
                    max,
                    &format!("{base}.maxUnavailable"),
                    "give minAvailable or maxUnavailable, not both (as a PodDisruptionBudget)",
                ));
            }
            (Some(min), None) => DisruptionBudget::MinAvailable(
                self.int_or_percent(min, &format!("{base}.minAvailable"))?,
            ),
            (None, Some(max)) => DisruptionBudget::MaxUnavailable(
                self.int_or_percent(max, &format!("{base}.maxUnavailable"))?,
            ),
            (None, None) => DisruptionBudget::MaxUnavailable(IntOrPercent::Count(1)),
        }))
    }

    fn probe(
        &self,
        raw: Option<&RawProbe>,
        path: &str,
        default: ProbeSpec,
    ) -> Result<ProbeSpec, SpecError> {
        let Some(raw) = raw else {
            return Ok(default);
        };
        let period = self.duration_or(&raw.period, &format!("{path}.period"), default.period)?;
        if period.is_zero()
            && let Some(p) = &raw.period
        {
            return Err(self.error(p, &format!("{path}.period"), "must be longer than 0s"));
        }
        let threshold = |value: &Option<Spanned<u32>>, field: &str, default: u32| match value {
            None => Ok(default),
            Some(v) if v.value == 0 => {
                Err(self.error(v, &format!("{path}.{field}"), "must be at least 1"))
            }
            Some(v) => Ok(v.value),
        };
        Ok(ProbeSpec {
            path: self.http_path(&raw.path, &format!("{path}.path"), &default.path)?,
            period,
            timeout: self.duration_or(&raw.timeout, &format!("{path}.timeout"), default.timeout)?,
            failure_threshold: threshold(
                &raw.failure_threshold,
                "failureThreshold",
                default.failure_threshold,
            )?,
            success_threshold: threshold(
                &raw.success_threshold,
                "successThreshold",
                default.success_threshold,
            )?,
            initial_delay: self.duration_or(
                &raw.initial_delay,
                &format!("{path}.initialDelay"),
                default.initial_delay,
            )?,
        })
    }

    fn version(&self, raw: &Spanned<RawVersion>, path: &str) -> Result<VersionSpec, SpecError> {
        let version = &raw.value;
        Ok(VersionSpec {
            name: self.dns_label(&version.name, &format!("{path}.name"))?,
            env: version.env.clone(),
            command: self.command(&version.command, &format!("{path}.command"))?,
            image: version.image.clone(),
        })
    }

    fn int_or_percent(
        &self,
        value: &Spanned<RawIntOrPercent>,
        path: &str,
    ) -> Result<IntOrPercent, SpecError> {
        match &value.value {
            RawIntOrPercent::Count(n) => u32::try_from(*n)
                .map(IntOrPercent::Count)
                .map_err(|_| self.error(value, path, format!("{n} must be a count of 0 or more"))),
            RawIntOrPercent::Text(text) => {
                let percent = text
                    .trim()
                    .strip_suffix('%')
                    .and_then(|p| p.trim().parse::<u32>().ok())
                    .filter(|p| *p <= 100);
                percent.map(IntOrPercent::Percent).ok_or_else(|| {
                    self.error(
                        value,
                        path,
                        format!("`{text}` is neither a count nor a percentage from 0% to 100%"),
                    )
                })
            }
        }
    }

    fn strategy(&self, raw: &Spanned<RawStrategy>, replicas: u32) -> Result<Strategy, SpecError> {
        match &raw.value {
            RawStrategy::Recreate(RawEmpty {}) => Ok(Strategy::Recreate),
            RawStrategy::RollingUpdate(ru) => {
                let base = "strategy.rollingUpdate";
                let max_surge = match &ru.max_surge {
                    None => IntOrPercent::Percent(25),
                    Some(v) => self.int_or_percent(v, &format!("{base}.maxSurge"))?,
                };
                let max_unavailable = match &ru.max_unavailable {
                    None => IntOrPercent::Percent(25),
                    Some(v) => self.int_or_percent(v, &format!("{base}.maxUnavailable"))?,
                };
                let surge = max_surge.resolve(replicas, true);
                let unavailable = max_unavailable.resolve(replicas, false);
                if surge == 0 && unavailable == 0 {
                    let message = format!(
                        "maxSurge ({max_surge}) and maxUnavailable ({max_unavailable}) are both 0 \
                         for {replicas} replicas: the rollout could never make progress; \
                         set maxSurge to 1 or more"
                    );
                    return Err(match &ru.max_surge {
                        Some(at) => self.error(at, &format!("{base}.maxSurge"), message),
                        None => self.error(raw, base, message),
                    });
                }
                Ok(Strategy::RollingUpdate {
                    max_surge,
                    max_unavailable,
                    min_ready: Duration::from_secs(
                        ru.min_ready_seconds
                            .as_ref()
                            .map_or(0, |s| u64::from(s.value)),
                    ),
                })
            }
            RawStrategy::ClusterUpgrade(upgrade) => {
                let base = "strategy.clusterUpgrade";
                let eviction_timeout = self.duration_or(
                    &upgrade.eviction_timeout,
                    &format!("{base}.evictionTimeout"),
                    Duration::from_secs(60),
                )?;
                if eviction_timeout.is_zero()
                    && let Some(at) = &upgrade.eviction_timeout
                {
                    return Err(self.error(
                        at,
                        &format!("{base}.evictionTimeout"),
                        "must be longer than 0s",
                    ));
                }
                Ok(Strategy::ClusterUpgrade {
                    node_downtime: self.duration_or(
                        &upgrade.node_downtime,
                        &format!("{base}.nodeDowntime"),
                        Duration::from_secs(5),
                    )?,
                    eviction_timeout,
                })
            }
            RawStrategy::BlueGreen(bg) => Ok(Strategy::BlueGreen {
                auto_promote: bg.auto_promote.unwrap_or(true),
                preview_checks: bg.preview_checks.unwrap_or(5),
            }),
            RawStrategy::Canary(canary) => {
                let by_weight = canary.traffic_routing == Some(TrafficRouting::Weight);
                let base = "strategy.canary.steps";
                if canary.steps.value.is_empty() {
                    return Err(self.error(&canary.steps, base, "give at least one step"));
                }
                let mut steps = Vec::new();
                let mut routes = ManagedRoutes::default();
                for (index, step) in canary.steps.value.iter().enumerate() {
                    let path = format!("{base}[{index}]");
                    let step_spec = self.canary_step(step, &path, by_weight)?;
                    self.managed_route(&mut routes, step, &step_spec, &path)?;
                    steps.push(step_spec);
                }
                Ok(if by_weight {
                    Strategy::CanaryWeight { steps }
                } else {
                    Strategy::CanaryReplicas { steps }
                })
            }
        }
    }

    fn canary_step(
        &self,
        step: &Spanned<RawStep>,
        path: &str,
        by_weight: bool,
    ) -> Result<CanaryStep, SpecError> {
        match &step.value {
            RawStep::SetReplicas(RawSetReplicas { from, to }) => {
                if by_weight {
                    return Err(self.error(
                        step,
                        &format!("{path}.setReplicas"),
                        "setReplicas needs trafficRouting: replicas (the default); \
                         with trafficRouting: weight use setWeight",
                    ));
                }
                if from + to == 0 {
                    return Err(self.error(
                        step,
                        &format!("{path}.setReplicas"),
                        "from and to are both 0: nothing would serve the traffic",
                    ));
                }
                Ok(CanaryStep::SetReplicas {
                    from: *from,
                    to: *to,
                })
            }
            RawStep::SetWeight(weight) => {
                let path = format!("{path}.setWeight");
                if !by_weight {
                    return Err(self.error(
                        weight,
                        &path,
                        "setWeight needs trafficRouting: weight (by replicas, use setReplicas)",
                    ));
                }
                match u32::try_from(weight.value) {
                    Ok(w) if w <= 100 => Ok(CanaryStep::SetWeight(w)),
                    _ => Err(self.error(
                        weight,
                        &path,
                        format!("weight {} is outside 0..=100", weight.value),
                    )),
                }
            }
            RawStep::Analysis(analysis) => Ok(CanaryStep::Analysis(
                self.analysis_duration(&analysis.value, &format!("{path}.analysis"))?,
            )),
            RawStep::Pause(pause) => {
                let path = format!("{path}.pause");
                let text = match &pause.value {
                    RawPause::Short(text) => Some(text.clone()),
                    RawPause::Long(RawPauseLong { duration }) => duration.clone(),
                };
                match text {
                    None => Ok(CanaryStep::Pause(None)),
                    Some(text) => {
                        let located = Spanned {
                            value: text,
                            referenced: pause.referenced,
                            defined: pause.defined,
                        };
                        Ok(CanaryStep::Pause(Some(self.duration(&located, &path)?)))
                    }
                }
            }
            RawStep::SetHeaderRoute(route) => {
                let path = format!("{path}.setHeaderRoute");
                self.needs_weight(route, &path, "setHeaderRoute", by_weight)?;
                let name = self.dns_label(&route.value.name, &format!("{path}.name"))?;
                let matches = match &route.value.matches {
                    None => None,
                    Some(matches) => Some(self.matches(matches, &format!("{path}.match"))?),
                };
                Ok(CanaryStep::SetHeaderRoute { name, matches })
            }
            RawStep::SetMirrorRoute(route) => {
                let path = format!("{path}.setMirrorRoute");
                self.needs_weight(route, &path, "setMirrorRoute", by_weight)?;
                let raw = &route.value;
                let name = self.dns_label(&raw.name, &format!("{path}.name"))?;
                let percent = match &raw.percentage {
                    None => None,
                    Some(p) => match u32::try_from(p.value) {
                        Ok(p) if p <= 100 => Some(p),
                        _ => {
                            return Err(self.error(
                                p,
                                &format!("{path}.percentage"),
                                format!(
                                    "{} is outside 0..=100 (the share of requests copied)",
                                    p.value
                                ),
                            ));
                        }
                    },
                };
                let matches = match &raw.matches {
                    None => None,
                    Some(matches) => Some(self.matches(matches, &format!("{path}.match"))?),
                };
                // Argo's semantics: a name alone removes the route; a match alone copies all
                // of what it matches.
                let mirror = match (percent, matches) {
                    (None, None) => None,
                    (percent, matches) => Some(MirrorSpec {
                        percent: percent.unwrap_or(100),
                        matches: matches.unwrap_or_default(),
                    }),
                };
                Ok(CanaryStep::SetMirrorRoute { name, mirror })
            }
        }
    }

    /// `traffic.segments`: unique names, shares that leave room for the rest, valid headers.
    fn segments(&self, raw: &[Spanned<RawSegment>]) -> Result<Vec<TrafficSegment>, SpecError> {
        let mut segments: Vec<TrafficSegment> = Vec::new();
        for (index, item) in raw.iter().enumerate() {
            let path = format!("traffic.segments[{index}]");
            let segment = &item.value;
            let name = self.dns_label(&segment.name, &format!("{path}.name"))?;
            if segments.iter().any(|s| s.name == name) {
                return Err(self.error(
                    &segment.name,
                    &format!("{path}.name"),
                    format!("`{name}` names another segment already; keep one"),
                ));
            }
            let share_path = format!("{path}.share");
            let share_pct = match self.int_or_percent(&segment.share, &share_path)? {
                IntOrPercent::Count(n) if n <= 100 => f64::from(n),
                IntOrPercent::Percent(p) => f64::from(p),
                IntOrPercent::Count(n) => {
                    return Err(self.error(
                        &segment.share,
                        &share_path,
                        format!("{n} is more than 100%; write the share like 20%"),
                    ));
                }
            };
            let total: f64 = segments.iter().map(|s| s.share_pct).sum::<f64>() + share_pct;
            if total > 100.0 {
                return Err(self.error(
                    &segment.share,
                    &share_path,
                    format!("the segments' shares add up to {total}%, more than all requests"),
                ));
            }
            let mut headers = Vec::new();
            if let Some(map) = &segment.headers {
                for (name, value) in &map.value {
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                        || http::HeaderValue::from_str(value).is_err()
                    {
                        return Err(self.error(
                            map,
                            &format!("{path}.headers"),
                            format!("`{name}: {value}` is not a valid HTTP header"),
                        ));
                    }
                    headers.push((name.clone(), value.clone()));
                }
            }
            if let Some(cookie) = &segment.cookie {
                let valid = cookie
                    .value
                    .split_once('=')
                    .is_some_and(|(n, _)| !n.trim().is_empty())
                    && http::HeaderValue::from_str(&cookie.value).is_ok();
                if !valid {
                    return Err(self.error(
                        cookie,
                        &format!("{path}.cookie"),
                        format!(
                            "`{}` is not name=value (for example flavour=b)",
                            cookie.value
                        ),
                    ));
                }
                headers.push(("Cookie".to_string(), cookie.value.clone()));
            }
            if headers.is_empty() {
                return Err(self.error(
                    item,
                    &path,
                    "give the segment's headers ({ X-Canary: always }) or a cookie (name=value)",
                ));
            }
            segments.push(TrafficSegment {
                name,
                share_pct,
                headers,
            });
        }
        Ok(segments)
    }

    /// Managed routes need a router that routes by request (`trafficRouting: weight`).
    fn needs_weight<T>(
        &self,
        at: &Spanned<T>,
        path: &str,
        step: &str,
        by_weight: bool,
    ) -> Result<(), SpecError> {
        if by_weight {
            return Ok(());
        }
        Err(self.error(
            at,
            path,
            format!(
                "{step} needs trafficRouting: weight (a router that routes each request); \
                 by replicas both versions share one Service and no request can be steered"
            ),
        ))
    }

    /// A route's `match:` list: each item one header or cookie, and one exact or regex value.
    fn matches(
        &self,
        raw: &Spanned<Vec<Spanned<RawMatch>>>,
        path: &str,
    ) -> Result<Vec<RequestMatch>, SpecError> {
        if raw.value.is_empty() {
            return Err(self.error(
                raw,
                path,
                "give at least one match ({ header: X-Canary, exact: always }), \
                 or leave out match to remove the route",
            ));
        }
        let mut matches = Vec::new();
        for (index, item) in raw.value.iter().enumerate() {
            let path = format!("{path}[{index}]");
            let m = &item.value;
            let value = match (&m.exact, &m.regex) {
                (Some(exact), None) => ValueMatch::Exact(exact.clone()),
                (None, Some(regex)) => {
                    // Matched against the whole value, as the routers do.
                    if let Err(err) = regex::Regex::new(&format!("^(?:{})$", regex.value)) {
                        let why = err.to_string();
                        let why = why.lines().last().unwrap_or_default().trim();
                        return Err(self.error(
                            regex,
                            &format!("{path}.regex"),
                            format!("`{}` is not a valid regex ({why})", regex.value),
                        ));
                    }
                    ValueMatch::Regex(regex.value.clone())
                }
                _ => {
                    return Err(self.error(
                        item,
                        &path,
                        "give the value to match as exact: or regex: (one of the two)",
                    ));
                }
            };
            matches.push(match (&m.header, &m.cookie) {
                (Some(name), None) if !name.trim().is_empty() => RequestMatch::Header {
                    name: name.clone(),
                    value,
                },
                (None, Some(name)) if !name.trim().is_empty() => RequestMatch::Cookie {
                    name: name.clone(),
                    value,
                },
                _ => {
                    return Err(self.error(
                        item,
                        &path,
                        "say what to match: header: NAME or cookie: NAME (one of the two)",
                    ));
                }
            });
        }
        Ok(matches)
    }

    /// Route names across the steps: a header route and the mirror route never share a name,
    /// one mirror route at a time (the data plane holds one), and a route is removed only after
    /// a step set it (a removal of nothing is most likely a misspelt name).
    fn managed_route(
        &self,
        routes: &mut ManagedRoutes,
        raw: &Spanned<RawStep>,
        step: &CanaryStep,
        path: &str,
    ) -> Result<(), SpecError> {
        let (name_at, field) = match &raw.value {
            RawStep::SetHeaderRoute(r) => (&r.value.name, "setHeaderRoute"),
            RawStep::SetMirrorRoute(r) => (&r.value.name, "setMirrorRoute"),
            _ => return Ok(()),
        };
        let path = format!("{path}.{field}.name");
        let fail = |message: String| Err(self.error(name_at, &path, message));
        match step {
            CanaryStep::SetHeaderRoute { name, matches } => {
                if routes.mirror_names.contains(name) {
                    return fail(format!(
                        "`{name}` already names a mirror route; give the header route a name \
                         of its own"
                    ));
                }
                if matches.is_some() {
                    routes.header.insert(name.clone());
                    routes.header_names.insert(name.clone());
                } else if !routes.header.remove(name) {
                    return fail(format!(
                        "no header route `{name}` is set by an earlier step, so there is \
                         nothing to remove{}",
                        list_of("header routes set", &routes.header)
                    ));
                }
            }
            CanaryStep::SetMirrorRoute { name, mirror } => {
                if routes.header_names.contains(name) {
                    return fail(format!(
                        "`{name}` already names a header route; give the mirror route a name \
                         of its own"
                    ));
                }
                match (mirror, &routes.mirror) {
                    (Some(_), Some(current)) if current != name => {
                        return fail(format!(
                            "the mirror route `{current}` is still set and there is one mirror \
                             at a time: remove it first (setMirrorRoute: {{ name: {current} }})"
                        ));
                    }
                    (Some(_), _) => {
                        routes.mirror = Some(name.clone());
                        routes.mirror_names.insert(name.clone());
                    }
                    (None, Some(current)) if current == name => routes.mirror = None,
                    (None, _) => {
                        return fail(format!(
                            "no mirror route `{name}` is set by an earlier step, so there is \
                             nothing to remove{}",
                            list_of("the mirror route set", routes.mirror.iter())
                        ));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Route names met so far in a canary's steps.
#[derive(Default)]
struct ManagedRoutes {
    /// Header routes set now.
    header: std::collections::BTreeSet<String>,
    /// Every name ever given to a header route, and to a mirror route.
    header_names: std::collections::BTreeSet<String>,
    mirror_names: std::collections::BTreeSet<String>,
    /// The mirror route set now.
    mirror: Option<String>,
}

/// `; header routes set: a, b` (nothing when there is none).
fn list_of<'a>(what: &str, names: impl IntoIterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    if names.is_empty() {
        String::new()
    } else {
        format!("; {what}: {}", names.join(", "))
    }
}

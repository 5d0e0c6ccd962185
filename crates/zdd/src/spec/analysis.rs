//! The spec's `analysis:` block (docs/analysis.md): what is measured of the new version every
//! interval, and how many failed or inconclusive measurements a rollout tolerates. The raw
//! (located) types live here too, their validation in `analysis_check`.

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// What `analysis:` asks for, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisSpec {
    /// One measurement of every metric per interval (whole seconds, the probe's slots).
    pub interval: Duration,
    /// Failed measurements of one metric allowed; one more rolls back.
    pub failure_limit: u32,
    /// Inconclusive measurements of one metric allowed; one more rolls back.
    pub inconclusive_limit: u32,
    /// Fewer answers of the new version in an interval: inconclusive.
    pub min_requests: u64,
    /// Canary: background analysis from this step on (1-based, as `zdd status` counts steps).
    pub starting_step: usize,
    pub metrics: Vec<Metric>,
    /// Blue-green `prePromotionAnalysis`: measured through the preview route before the switch.
    pub pre_promotion: Option<Duration>,
    /// Blue-green `postPromotionAnalysis`: measured after the switch, the old version still up.
    pub post_promotion: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub name: String,
    pub kind: MetricKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MetricKind {
    /// The new version's share of successful answers (0..=1), from the probe.
    SuccessRate { min: f64 },
    /// The new version's latency at `quantile`, from the probe.
    Latency { quantile: f64, limit: LatencyLimit },
    /// A Prometheus instant query; `{{version}}` is replaced by the new version's name.
    Prometheus {
        address: String,
        query: String,
        bound: Bound,
    },
    /// The share of the copies a mirror route sent to the new version that were answered 1xx to
    /// 3xx in the interval, from the platform's mirror counters.
    MirrorSuccessRate { min: f64 },
    /// A program run with `{{version}}` and `{{url}}` replaced: exit 0 passes.
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LatencyLimit {
    Max(Duration),
    /// At most this many times the old version's latency at the same quantile, same interval.
    MaxRatioToOld(f64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    Max(f64),
    Min(f64),
}

/// A canary step `- analysis: { duration: 10s }`: measurements for that long, which must pass.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnalysisStep {
    pub(super) duration: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawAnalysis {
    #[serde(default)]
    pub(super) interval: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) failure_limit: Option<u32>,
    #[serde(default)]
    pub(super) inconclusive_limit: Option<u32>,
    #[serde(default)]
    pub(super) min_requests: Option<u64>,
    #[serde(default)]
    pub(super) starting_step: Option<Spanned<u32>>,
    pub(super) metrics: Spanned<Vec<Spanned<RawMetric>>>,
}

/// One metric: a `name` and exactly one kind (a kind not listed is an unknown field).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawMetric {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) success_rate: Option<Spanned<RawSuccessRate>>,
    #[serde(default)]
    pub(super) latency: Option<Spanned<RawLatency>>,
    #[serde(default)]
    pub(super) mirror: Option<Spanned<RawMirror>>,
    #[serde(default)]
    pub(super) prometheus: Option<Spanned<RawPrometheus>>,
    #[serde(default)]
    pub(super) command: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub(super) timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSuccessRate {
    pub(super) min: Spanned<RawNumber>,
}

/// `mirror: { successRate: { min: 99% } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawMirror {
    pub(super) success_rate: Spanned<RawSuccessRate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawLatency {
    pub(super) quantile: Spanned<f64>,
    #[serde(default)]
    pub(super) max: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) max_ratio_to_old: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrometheus {
    pub(super) address: Spanned<String>,
    pub(super) query: Spanned<String>,
    #[serde(default)]
    pub(super) max: Option<Spanned<f64>>,
    #[serde(default)]
    pub(super) min: Option<Spanned<f64>>,
}

/// `99.5%` or `0.995`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawNumber {
    Number(f64),
    Text(String),
}

//! Validation of the spec's `analysis:` block into [`AnalysisSpec`] (the types are in
//! `analysis`, the shared checks in `raw`).

use std::time::Duration;

use serde_saphyr::Spanned;

use super::SpecError;
use super::analysis::{
    AnalysisSpec, Bound, LatencyLimit, Metric, MetricKind, RawAnalysis, RawAnalysisStep,
    RawLatency, RawMetric, RawNumber, RawPrometheus,
};
use super::raw::Validator;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

impl Validator<'_> {
    /// `{ duration: 10s }` of an analysis step (canary) or a blue-green promotion analysis.
    pub(super) fn analysis_duration(
        &self,
        step: &RawAnalysisStep,
        path: &str,
    ) -> Result<Duration, SpecError> {
        let path = format!("{path}.duration");
        let duration = self.duration(&step.duration, &path)?;
        if duration < Duration::from_secs(1) {
            return Err(self.error(
                &step.duration,
                &path,
                "must be at least 1s (at least one measurement interval)",
            ));
        }
        Ok(duration)
    }

    pub(super) fn analysis(
        &self,
        raw: &Spanned<RawAnalysis>,
        steps: usize,
    ) -> Result<AnalysisSpec, SpecError> {
        let analysis = &raw.value;
        let interval =
            self.duration_or(&analysis.interval, "analysis.interval", DEFAULT_INTERVAL)?;
        if let Some(at) = &analysis.interval
            && (interval < Duration::from_secs(1) || interval.subsec_nanos() != 0)
        {
            return Err(self.error(
                at,
                "analysis.interval",
                "must be a whole number of seconds, at least 1s (the probe measures per second)",
            ));
        }
        let starting_step = match &analysis.starting_step {
            None => 1,
            Some(at) if at.value == 0 || at.value as usize > steps.max(1) => {
                return Err(self.error(
                    at,
                    "analysis.startingStep",
                    format!(
                        "{} is not a step: the steps are numbered 1 to {}",
                        at.value,
                        steps.max(1)
                    ),
                ));
            }
            Some(at) => at.value as usize,
        };
        if analysis.metrics.value.is_empty() {
            return Err(self.error(
                &analysis.metrics,
                "analysis.metrics",
                "give at least one metric (successRate, latency, prometheus or command)",
            ));
        }
        let mut metrics: Vec<Metric> = Vec::new();
        for (index, metric) in analysis.metrics.value.iter().enumerate() {
            let metric = self.metric(metric, &format!("analysis.metrics[{index}]"))?;
            metrics.push(metric);
        }
        for (index, metric) in metrics.iter().enumerate() {
            if metrics[..index].iter().any(|m| m.name == metric.name) {
                let at = &analysis.metrics.value[index].value.name;
                return Err(self.error(
                    at,
                    &format!("analysis.metrics[{index}].name"),
                    format!(
                        "`{}` names another metric already; names must differ",
                        metric.name
                    ),
                ));
            }
        }
        Ok(AnalysisSpec {
            interval,
            failure_limit: analysis.failure_limit.unwrap_or(0),
            inconclusive_limit: analysis.inconclusive_limit.unwrap_or(3),
            min_requests: analysis.min_requests.unwrap_or(20),
            starting_step,
            metrics,
            pre_promotion: None,
            post_promotion: None,
        })
    }

    fn metric(&self, raw: &Spanned<RawMetric>, path: &str) -> Result<Metric, SpecError> {
        let metric = &raw.value;
        let name = self.dns_label(&metric.name, &format!("{path}.name"))?;
        let kinds = [
            metric.success_rate.is_some(),
            metric.latency.is_some(),
            metric.mirror.is_some(),
            metric.prometheus.is_some(),
            metric.command.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(self.error(
                raw,
                path,
                "give exactly one kind of measurement: successRate, latency, mirror, \
                 prometheus or command",
            ));
        }
        if let (Some(at), None) = (&metric.timeout, &metric.command) {
            return Err(self.error(
                at,
                &format!("{path}.timeout"),
                "only a command metric has a timeout",
            ));
        }
        let kind = if let Some(rate) = &metric.success_rate {
            MetricKind::SuccessRate {
                min: self.share(&rate.value.min, &format!("{path}.successRate.min"))?,
            }
        } else if let Some(latency) = &metric.latency {
            self.latency(latency, &format!("{path}.latency"))?
        } else if let Some(mirror) = &metric.mirror {
            MetricKind::MirrorSuccessRate {
                min: self.share(
                    &mirror.value.success_rate.value.min,
                    &format!("{path}.mirror.successRate.min"),
                )?,
            }
        } else if let Some(prometheus) = &metric.prometheus {
            self.prometheus(prometheus, &format!("{path}.prometheus"))?
        } else {
            let argv = self
                .command(&metric.command, &format!("{path}.command"))?
                .unwrap_or_default();
            let timeout = self.duration_or(
                &metric.timeout,
                &format!("{path}.timeout"),
                DEFAULT_COMMAND_TIMEOUT,
            )?;
            if timeout.is_zero()
                && let Some(at) = &metric.timeout
            {
                return Err(self.error(at, &format!("{path}.timeout"), "must be longer than 0s"));
            }
            MetricKind::Command { argv, timeout }
        };
        Ok(Metric { name, kind })
    }

    /// A share: `99.5%` or a fraction from 0 to 1.
    fn share(&self, raw: &Spanned<RawNumber>, path: &str) -> Result<f64, SpecError> {
        let share = match &raw.value {
            RawNumber::Number(n) => Some(*n),
            RawNumber::Text(text) => text
                .trim()
                .strip_suffix('%')
                .and_then(|n| n.trim().parse::<f64>().ok())
                .map(|n| n / 100.0),
        };
        match share {
            Some(share) if (0.0..=1.0).contains(&share) => Ok(share),
            _ => Err(self.error(
                raw,
                path,
                "expected a share from 0% to 100% (99.5%) or a fraction from 0 to 1 (0.995)",
            )),
        }
    }

    fn latency(&self, raw: &Spanned<RawLatency>, path: &str) -> Result<MetricKind, SpecError> {
        let latency = &raw.value;
        let quantile = latency.quantile.value;
        if !(quantile > 0.0 && quantile <= 1.0) {
            return Err(self.error(
                &latency.quantile,
                &format!("{path}.quantile"),
                format!("{quantile} is not a quantile: give one above 0 and at most 1 (0.99)"),
            ));
        }
        let limit = match (&latency.max, &latency.max_ratio_to_old) {
            (Some(max), None) => {
                let at = format!("{path}.max");
                let max = self.duration(max, &at)?;
                if max.is_zero() {
                    return Err(self.error(
                        latency.max.as_ref().expect("present"),
                        &at,
                        "must be longer than 0s",
                    ));
                }
                LatencyLimit::Max(max)
            }
            (None, Some(ratio)) if ratio.value > 0.0 && ratio.value.is_finite() => {
                LatencyLimit::MaxRatioToOld(ratio.value)
            }
            (None, Some(ratio)) => {
                return Err(self.error(
                    ratio,
                    &format!("{path}.maxRatioToOld"),
                    format!("{} is not a ratio: give one above 0 (1.5)", ratio.value),
                ));
            }
            _ => {
                return Err(self.error(
                    raw,
                    path,
                    "give either max (a duration, 50ms) or maxRatioToOld (1.5), not both",
                ));
            }
        };
        Ok(MetricKind::Latency { quantile, limit })
    }

    fn prometheus(
        &self,
        raw: &Spanned<RawPrometheus>,
        path: &str,
    ) -> Result<MetricKind, SpecError> {
        let prometheus = &raw.value;
        let address = prometheus.address.value.trim().trim_end_matches('/');
        let valid_address = address
            .strip_prefix("http://")
            .is_some_and(|rest| !rest.is_empty() && address.parse::<http::Uri>().is_ok());
        if !valid_address {
            return Err(self.error(
                &prometheus.address,
                &format!("{path}.address"),
                format!(
                    "`{}` is not an http:// address of Prometheus (http://127.0.0.1:9090)",
                    prometheus.address.value
                ),
            ));
        }
        let query = prometheus.query.value.trim();
        if !query.contains("{{version}}") {
            return Err(self.error(
                &prometheus.query,
                &format!("{path}.query"),
                "the query must select the new version: write {{version}} where its name goes, \
                 as in http_requests_total{version=\"{{version}}\"}",
            ));
        }
        let bound = match (&prometheus.max, &prometheus.min) {
            (Some(max), None) if max.value.is_finite() => Bound::Max(max.value),
            (None, Some(min)) if min.value.is_finite() => Bound::Min(min.value),
            (Some(at), None) | (None, Some(at)) => {
                return Err(self.error(at, path, "expected a finite number"));
            }
            _ => {
                return Err(self.error(
                    raw,
                    path,
                    "give either max or min: the bound the query's value must keep",
                ));
            }
        };
        Ok(MetricKind::Prometheus {
            address: address.to_string(),
            query: query.to_string(),
            bound,
        })
    }
}

//! What a run comes to: one [`Summary`] per rollout, the table `zdd demo` and `zdd rollout` print,
//! and the JSON and HTML files they write.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::RunResult;
use crate::events::{Event, Record, Verdict};
use crate::spec::Spec;

/// One line of the summary table (and one object of `--json`).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub strategy: String,
    pub name: String,
    pub outcome: String,
    /// False when zdd could not reach the main route (Kubernetes without `--verify-url`): no
    /// request was sent, the counts below are zeros and the failure budget was not checked.
    pub traffic_measured: bool,
    pub succeeded: bool,
    pub within_budget: bool,
    /// From the first step to the end of the rollout.
    pub duration_s: f64,
    pub total: u64,
    pub failed: u64,
    pub longest_outage_s: f64,
    pub p99_ms: f64,
    pub by_version: std::collections::BTreeMap<String, u64>,
    pub failed_by_kind: std::collections::BTreeMap<String, u64>,
    pub outages: Vec<zdd_probe::Outage>,
    /// A shadow's counters (the last mirror route's, read when it went): how the new version
    /// answered the copies no client saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorSummary>,
    /// What the probe saw while each managed route was set (see `route_windows`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub route_windows: Vec<super::route_windows::RouteWindow>,
    pub report: zdd_probe::Report,
    pub events: Vec<Record>,
    /// Every measurement of the analysis, in order (empty without an `analysis:` block).
    pub analysis: Vec<AnalysisRow>,
    /// Why the rollout was rolled back (abort, budget, a failed analysis, a failed step).
    pub rollback_reason: Option<String>,
}

/// One measurement of one metric (docs/analysis.md).
#[derive(Clone, Debug, Serialize)]
pub struct AnalysisRow {
    pub metric: String,
    /// The end of the interval measured, on the run's clock.
    pub t_s: f64,
    pub value: Option<f64>,
    pub threshold: String,
    pub verdict: Verdict,
}

fn analysis_rows(records: &[Record]) -> Vec<AnalysisRow> {
    records
        .iter()
        .filter_map(|record| match &record.event {
            Event::AnalysisMeasured {
                metric,
                verdict,
                value,
                threshold,
                to_s,
                ..
            } => Some(AnalysisRow {
                metric: metric.clone(),
                t_s: *to_s,
                value: *value,
                threshold: threshold.clone(),
                verdict: *verdict,
            }),
            _ => None,
        })
        .collect()
}

/// An event's mark on the HTML charts: an analysis measurement at the end of its interval, in
/// its verdict's colour; any other event as the probe draws events.
fn html_mark(record: &Record) -> zdd_probe::Mark {
    match &record.event {
        Event::AnalysisMeasured {
            metric,
            verdict,
            detail,
            to_s,
            ..
        } => zdd_probe::Mark {
            t_s: *to_s,
            label: format!("{metric} {verdict}: {detail}"),
            color: match verdict {
                Verdict::Pass => "#2a7d2a",
                Verdict::Fail => "#c62828",
                Verdict::Inconclusive => "#b07800",
            }
            .to_string(),
        },
        _ => zdd_probe::Mark::from(&record.mark()),
    }
}

/// The analysis as text: one line per measurement (its interval, the value against the
/// threshold, the verdict), then the rollback's reason. Empty without measurements.
pub fn render_analysis(records: &[Record]) -> String {
    let mut out = String::new();
    for record in records {
        if let Event::AnalysisMeasured {
            metric,
            verdict,
            threshold,
            detail,
            from_s,
            to_s,
            ..
        } = &record.event
        {
            if out.is_empty() {
                out.push_str("analysis:\n");
            }
            let interval = format!("{from_s:.1}-{to_s:.1}s");
            out.push_str(&format!(
                "  {interval:>11}  {metric:<16} {verdict:<12} {detail} (wanted {threshold})\n"
            ));
        }
    }
    if let (false, Some(reason)) = (out.is_empty(), rollback_reason(records)) {
        out.push_str(&format!("  rolled back: {reason}\n"));
    }
    out
}

fn rollback_reason(records: &[Record]) -> Option<String> {
    records.iter().find_map(|record| match &record.event {
        Event::RolloutFailed { reason } => Some(reason.clone()),
        _ => None,
    })
}

impl Summary {
    pub fn new(spec: &Spec, result: &RunResult) -> Self {
        let report = &result.report;
        let within_budget = spec
            .budget
            .max_failed
            .is_none_or(|max| report.failed <= max);
        Summary {
            strategy: spec.strategy.kind().to_string(),
            name: spec.name.clone(),
            outcome: result.outcome.to_string(),
            traffic_measured: result.traffic_measured,
            succeeded: result.outcome.succeeded(),
            within_budget,
            duration_s: rollout_duration(&result.events),
            total: report.total,
            failed: report.failed,
            longest_outage_s: report.longest_outage_s,
            p99_ms: report.latency_ms.p99,
            by_version: report.by_version.clone(),
            failed_by_kind: report.failed_by_kind.clone(),
            outages: report.outages.clone(),
            mirror: MirrorSummary::last_of(&result.events, &spec.from.name, report),
            route_windows: super::route_windows::route_windows(&result.events, report),
            report: report.clone(),
            events: result.events.clone(),
            analysis: analysis_rows(&result.events),
            rollback_reason: rollback_reason(&result.events),
        }
    }

    pub fn passed(&self) -> bool {
        self.succeeded && self.within_budget
    }
}

/// The mirror target's counters as the report gives them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MirrorSummary {
    pub version: String,
    pub sent: u64,
    pub ok: u64,
    /// Answered 4xx or 5xx, or not answered.
    pub failed: u64,
    /// Not sent: the queue of copies was full.
    pub dropped: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The old version's own answers to the clients over the run, to compare with.
    pub old_version: String,
    pub old_p50_ms: Option<f64>,
    pub old_p99_ms: Option<f64>,
}

impl MirrorSummary {
    /// From the run's last `MirrorMeasured` event, beside `old`'s latency in `report`.
    fn last_of(records: &[Record], old: &str, report: &zdd_probe::Report) -> Option<MirrorSummary> {
        let old_latency = report.latency_ms_by_version.get(old);
        records.iter().rev().find_map(|r| match &r.event {
            Event::MirrorMeasured { stats, .. } => Some(MirrorSummary {
                version: stats.version.clone(),
                sent: stats.sent,
                ok: stats.ok,
                failed: stats.failed(),
                dropped: stats.dropped,
                p50_ms: stats.p50_ms,
                p99_ms: stats.p99_ms,
                old_version: old.to_string(),
                old_p50_ms: old_latency.map(|l| l.p50),
                old_p99_ms: old_latency.map(|l| l.p99),
            }),
            _ => None,
        })
    }
}

/// Seconds from the rollout's (or cluster upgrade's) start to its end (succeeded, rolled back,
/// rollback failed, failed or interrupted).
fn rollout_duration(records: &[Record]) -> f64 {
    let start = records.iter().find(|r| {
        matches!(
            r.event,
            Event::RolloutStarted { .. } | Event::ClusterUpgradeStarted { .. }
        )
    });
    let end = records.iter().rev().find(|r| {
        matches!(
            r.event,
            Event::RolloutSucceeded
                | Event::RolledBack { .. }
                | Event::RollbackFailed { .. }
                | Event::RolloutInterrupted { .. }
                | Event::ClusterUpgradeFinished
                | Event::ClusterUpgradeFailed { .. }
        )
    });
    match (start, end) {
        (Some(start), Some(end)) => (end.t_s - start.t_s).max(0.0),
        _ => 0.0,
    }
}

/// The Markdown table `zdd demo` and `zdd rollout` print.
pub fn render_table(rows: &[Summary]) -> String {
    let mut out = String::from(
        "| strategy | duration | requests | failed | longest outage | p99 | result |\n\
         |---|---:|---:|---:|---:|---:|---|\n",
    );
    for row in rows {
        let result = if row.passed() {
            "ok".to_string()
        } else if !row.succeeded {
            row.outcome.clone()
        } else {
            "over budget".to_string()
        };
        if !row.traffic_measured {
            out.push_str(&format!(
                "| {} | {:.1} s | not measured | not measured | not measured | not measured | {} |\n",
                row.strategy, row.duration_s, result
            ));
            continue;
        }
        out.push_str(&format!(
            "| {} | {:.1} s | {} | {} | {:.2} s | {:.1} ms | {} |\n",
            row.strategy,
            row.duration_s,
            row.total,
            row.failed,
            row.longest_outage_s,
            row.p99_ms,
            result
        ));
    }
    for row in rows {
        if !row.route_windows.is_empty() || row.mirror.is_some() {
            out.push('\n');
        }
        for window in &row.route_windows {
            out.push_str(&super::route_windows::describe(&row.strategy, window));
        }
        if let Some(mirror) = &row.mirror {
            out.push_str(&mirror_line(row, mirror));
        }
    }
    out
}

/// Under the table: what the shadow answered, beside the old version's own answers to the
/// clients (only it answers them while a shadow runs).
fn mirror_line(row: &Summary, mirror: &MirrorSummary) -> String {
    let old = match (mirror.old_p50_ms, mirror.old_p99_ms) {
        (Some(p50), Some(p99)) => format!(
            "{}'s answers: p50 {p50:.1} ms, p99 {p99:.1} ms",
            mirror.old_version
        ),
        _ => format!("no answer from {}", mirror.old_version),
    };
    format!(
        "{}: mirror to {}: {} copies, {} ok, {} failed, {} dropped, p50 {:.1} ms, p99 {:.1} ms \
         ({old})\n",
        row.strategy,
        mirror.version,
        mirror.sent,
        mirror.ok,
        mirror.failed,
        mirror.dropped,
        mirror.p50_ms,
        mirror.p99_ms,
    )
}

pub fn write_outputs(
    rows: &[Summary],
    json: Option<&Path>,
    html: Option<&Path>,
    as_array: bool,
) -> anyhow::Result<()> {
    if let Some(path) = json {
        let text = if as_array || rows.len() != 1 {
            serde_json::to_string_pretty(rows)?
        } else {
            serde_json::to_string_pretty(&rows[0])?
        };
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = html {
        let titles: Vec<String> = rows
            .iter()
            .map(|r| {
                if r.name == r.strategy {
                    format!("{}: {}", r.strategy, r.outcome)
                } else {
                    format!("{} ({}): {}", r.name, r.strategy, r.outcome)
                }
            })
            .collect();
        let marks: Vec<Vec<zdd_probe::Mark>> = rows
            .iter()
            .map(|r| r.events.iter().map(html_mark).collect())
            .collect();
        let sections: Vec<(&str, &zdd_probe::Report, &[zdd_probe::Mark])> = rows
            .iter()
            .zip(&titles)
            .zip(&marks)
            .map(|((r, t), marks)| (t.as_str(), &r.report, marks.as_slice()))
            .collect();
        std::fs::write(path, zdd_probe::render_html_marked(&sections))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

//! The report of a run and its text form. The JSON schema is documented in docs/probe-report.md.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// The report; its JSON form is documented in docs/probe-report.md.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The URL probed.
    #[serde(default)]
    pub url: String,
    /// Requests per second scheduled.
    #[serde(default)]
    pub rate: u32,
    /// Most requests in flight at once (the probe's slots: its `connections` setting).
    #[serde(default)]
    pub connections: usize,
    /// The most connections the probe had open at once: it opens one only when no idle one is
    /// free, so this follows the requests in flight (a server that stalls makes it grow).
    #[serde(default)]
    pub max_connections_open: usize,
    /// Requests scheduled (= `ok + failed`).
    pub total: u64,
    pub ok: u64,
    pub failed: u64,
    /// Every failure kind, zeros included.
    pub failed_by_kind: BTreeMap<String, u64>,
    /// Ok responses by the version that answered (`unknown` when it did not say); sums to `ok`.
    pub by_version: BTreeMap<String, u64>,
    /// Failed answers (4xx, 5xx) by the version that answered, when it said: a bad version's
    /// blast radius. Failures without an answer (refused, reset, timeout) name no version.
    #[serde(default)]
    pub failed_by_version: BTreeMap<String, u64>,
    /// Maximal stretches in which every request failed, oldest first (at most 1000 kept).
    #[serde(default)]
    pub outages: Vec<Outage>,
    /// Outages beyond the 1000 kept (counted in `longest_outage_s` all the same).
    #[serde(default)]
    pub outages_omitted: u64,
    pub longest_outage_s: f64,
    /// Latency of answered requests, from the scheduled send time.
    #[serde(default)]
    pub latency_ms: Latency,
    /// The same, for each version's ok answers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub latency_ms_by_version: BTreeMap<String, Latency>,
    /// When the first request was scheduled, in seconds since time zero (shared with events).
    #[serde(default)]
    pub start_s: f64,
    /// How long requests were scheduled for.
    pub duration_s: f64,
    /// The width of a timeline bucket (0.1).
    #[serde(default)]
    pub bucket_s: f64,
    /// One bucket per `bucket_s` from `start_s`, by scheduled time.
    #[serde(default)]
    pub timeline: Vec<TimelineBucket>,
    /// The segments' own counts (`--segment`), when there are any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<crate::segments::SegmentReport>,
}

/// A maximal stretch of time in which every request failed (by scheduled time).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    /// Scheduled time of the first failed request.
    pub start_s: f64,
    /// Scheduled time of the next request that succeeded (or, when the run ended during the outage,
    /// of the last failed request plus one interval).
    pub end_s: f64,
    pub duration_s: f64,
    /// Requests that failed in it.
    pub failed: u64,
    #[serde(default)]
    pub failed_by_kind: BTreeMap<String, u64>,
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    /// Requests measured (those that got an HTTP answer).
    #[serde(default)]
    pub count: u64,
}

/// Outcomes of the requests scheduled in one bucket of the timeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineBucket {
    /// Start of the bucket, seconds since time zero.
    pub t_s: f64,
    pub ok: u64,
    pub failed: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_version: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed_by_kind: BTreeMap<String, u64>,
    /// p99 latency of the bucket's answered requests; `null` when none was answered.
    #[serde(default)]
    pub p99_ms: Option<f64>,
}

/// The human-readable summary printed at the end of `zdd probe`.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let percent = |n: u64| {
        if report.total == 0 {
            0.0
        } else {
            100.0 * n as f64 / report.total as f64
        }
    };
    let _ = writeln!(
        out,
        "probe     {} at {} rps for {:.1} s, up to {} in flight, {} connections open at most",
        if report.url.is_empty() {
            "(url)"
        } else {
            &report.url
        },
        report.rate,
        report.duration_s,
        report.connections,
        report.max_connections_open
    );
    let _ = writeln!(
        out,
        "requests  {} sent, {} ok, {} failed ({:.2}%)",
        report.total,
        report.ok,
        report.failed,
        percent(report.failed)
    );
    let kinds: Vec<String> = report
        .failed_by_kind
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    if !kinds.is_empty() {
        let _ = writeln!(out, "failures  {}", kinds.join(", "));
    }
    if !report.by_version.is_empty() {
        let versions: Vec<String> = report
            .by_version
            .iter()
            .map(|(version, n)| {
                let share = if report.ok == 0 {
                    0.0
                } else {
                    100.0 * *n as f64 / report.ok as f64
                };
                format!("{version} {n} ({share:.1}%)")
            })
            .collect();
        let _ = writeln!(out, "versions  {}", versions.join(", "));
    }
    let l = &report.latency_ms;
    let _ = writeln!(
        out,
        "latency   p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (from the scheduled send time)",
        l.p50, l.p90, l.p99, l.max
    );
    crate::segments::render_text(&report.segments, &mut out);
    let count = report.outages.len() as u64 + report.outages_omitted;
    let _ = writeln!(
        out,
        "outages   {count}, longest {:.3} s",
        report.longest_outage_s
    );
    for outage in report.outages.iter().take(20) {
        let kinds: Vec<String> = outage
            .failed_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "  {:>8.3} s .. {:>8.3} s  {:.3} s, {} failed ({})",
            outage.start_s,
            outage.end_s,
            outage.duration_s,
            outage.failed,
            kinds.join(", ")
        );
    }
    if report.outages.len() > 20 {
        let _ = writeln!(out, "  ... {} more", count - 20);
    }
    out
}

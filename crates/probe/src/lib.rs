//! zdd-probe: an open-loop load generator that proves (or disproves) zero downtime.
//!
//! CONTRACT (skeleton written before the implementation; the signatures below are what the rest of
//! the workspace builds against. The owner of this crate may extend them, but keep these working.)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A timestamped event to mark on the report's charts (`--events FILE`, JSON lines).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds since the probe's time zero.
    pub t_s: f64,
    pub label: String,
}

#[derive(Clone, Debug)]
pub struct ProbeConfig {
    pub url: http::Uri,
    /// Requests per second, scheduled open-loop.
    pub rate: u32,
    /// `None`: until [`ProbeHandle::stop`].
    pub duration: Option<Duration>,
    /// Most requests in flight at once; one that cannot start counts as `saturated`.
    pub connections: usize,
    /// Fraction of requests sent on a fresh connection.
    pub new_connection_ratio: f64,
    pub timeout: Duration,
    /// The header that names the answering version (then the JSON body's `version` field).
    pub version_header: String,
    /// Used when the app reports no version itself (zdd's router adds `X-Zdd-Version`).
    pub fallback_version_header: Option<String>,
    /// Time zero of the report; share it with an event log. Default: the start of the run.
    pub origin: Option<Instant>,
}

impl ProbeConfig {
    pub fn new(url: http::Uri) -> Self {
        ProbeConfig {
            url,
            rate: 200,
            duration: None,
            connections: 64,
            new_connection_ratio: 0.0,
            timeout: Duration::from_secs(2),
            version_header: "X-Version".into(),
            fallback_version_header: None,
            origin: None,
        }
    }
}

/// Counts in a window of time, read while the probe runs (the engine's data-plane check).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WindowStats {
    pub ok: u64,
    pub failed: u64,
    pub by_version: BTreeMap<String, u64>,
}

/// A running probe.
pub struct ProbeHandle {
    _private: (),
}

impl ProbeHandle {
    /// Outcomes of requests *scheduled* at or after `since` that have completed.
    pub fn window(&self, _since: Instant) -> WindowStats {
        todo!("probe owner")
    }

    /// Asks the probe to stop scheduling; in-flight requests still complete (or time out).
    pub fn stop(&self) {
        todo!("probe owner")
    }

    /// Waits for the run to end (duration reached or [`stop`](Self::stop)) and returns the report.
    pub async fn finish(self) -> Report {
        todo!("probe owner")
    }
}

/// Starts a probe on the current tokio runtime.
pub fn start(_config: ProbeConfig) -> Result<ProbeHandle, ProbeError> {
    todo!("probe owner")
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("invalid probe configuration: {0}")]
    Config(String),
}

/// The report; its JSON form is documented in docs/probe-report.md.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub total: u64,
    pub ok: u64,
    pub failed: u64,
    pub failed_by_kind: BTreeMap<String, u64>,
    pub by_version: BTreeMap<String, u64>,
    pub longest_outage_s: f64,
    pub duration_s: f64,
}

/// One self-contained HTML page, one section per run (the demo puts five on one page).
pub fn render_html(_sections: &[(&str, &Report, &[Event])]) -> String {
    todo!("probe owner")
}

/// The human-readable summary printed at the end of `zdd probe`.
pub fn render_text(_report: &Report) -> String {
    todo!("probe owner")
}

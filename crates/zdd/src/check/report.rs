//! A check's report: the verdicts, the recommendation and what was measured, as the text a
//! terminal shows (a Markdown table) and as JSON.

use serde::Serialize;

use super::config::CheckConfig;
use super::measurements::Measurements;
use super::recommend::{Recommendation, recommend};
use super::run::CheckRun;
use super::verdicts::{CheckResult, Verdict, human, judge};
use crate::events::Record;

#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub command: Vec<String>,
    pub settings: CheckConfig,
    /// No check failed (skipped and info ones do not fail).
    pub passed: bool,
    pub checks: Vec<CheckResult>,
    /// Paths that were not the ones asked for, and why.
    pub notes: Vec<String>,
    pub recommendation: Option<Recommendation>,
    pub measurements: Measurements,
    pub events: Vec<Record>,
}

impl CheckReport {
    pub fn new(config: &CheckConfig, run: CheckRun) -> CheckReport {
        let checks = judge(config, &run.measurements);
        CheckReport {
            command: config.command.clone(),
            settings: config.clone(),
            passed: checks.iter().all(|c| c.verdict != Verdict::Fail),
            checks,
            notes: run.measurements.paths.notes.clone(),
            recommendation: recommend(config, &run.measurements),
            measurements: run.measurements,
            events: run.events,
        }
    }

    pub fn failed_checks(&self) -> Vec<u8> {
        self.checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .map(|c| c.number)
            .collect()
    }

    /// What was assumed of the cluster, in one line.
    pub fn assumptions(&self) -> String {
        let s = &self.settings;
        let pre_stop = if s.pre_stop.is_zero() {
            "no preStop".to_owned()
        } else {
            format!("preStop {}", human(s.pre_stop.as_secs_f64()))
        };
        format!(
            "propagation delay {}, {pre_stop}, grace period {}, readiness {} every {}, liveness \
             {}, {} requests/s to {} over the app and one more replica",
            human(s.propagation_delay.as_secs_f64()),
            human(s.grace_period.as_secs_f64()),
            self.measurements.paths.readiness,
            human(s.readiness_period.as_secs_f64()),
            self.measurements.paths.liveness,
            s.rate,
            s.traffic_path
        )
    }

    /// The last line: which checks failed, or that none did.
    pub fn verdict_line(&self) -> String {
        let failed = self.failed_checks();
        let skipped = self
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Skipped)
            .count();
        let skipped = if skipped > 0 {
            format!(" ({skipped} skipped)")
        } else {
            String::new()
        };
        if failed.is_empty() {
            format!("zdd check: no check failed{skipped}")
        } else {
            let names: Vec<String> = failed
                .iter()
                .map(|n| format!("{n} {}", self.checks[*n as usize - 1].name))
                .collect();
            format!(
                "zdd check: {} failed: {}{skipped}",
                if failed.len() == 1 {
                    "1 check".to_owned()
                } else {
                    format!("{} checks", failed.len())
                },
                names.join(", ")
            )
        }
    }
}

/// The table: one row per check.
pub fn render_table(checks: &[CheckResult]) -> String {
    let cell = |text: &str| text.replace('|', "\\|").replace('\n', " ");
    let mut out = String::from("| # | check | verdict | measured | fix |\n|---|---|---|---|---|\n");
    for check in checks {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            check.number,
            check.name,
            check.verdict,
            cell(&check.measured),
            cell(&check.fix)
        ));
    }
    out
}

/// What `zdd check` prints.
pub fn render_text(report: &CheckReport) -> String {
    let mut out = format!(
        "zdd check: {}\nassumed: {}\n",
        report.command.join(" "),
        report.assumptions()
    );
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out.push('\n');
    out.push_str(&render_table(&report.checks));
    if let Some(recommendation) = &report.recommendation {
        out.push_str("\nTo paste into the Deployment (computed from the measurements):\n\n");
        out.push_str(&recommendation.yaml);
    }
    out.push('\n');
    out.push_str(&report.verdict_line());
    out.push('\n');
    out
}

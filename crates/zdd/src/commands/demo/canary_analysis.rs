//! `zdd demo canary-analysis`: a v2 that fails 5% of its requests (`ERROR_RATE`), rolled back
//! by its success rate at its first weight (examples/canary-analysis.yaml). Not part of the
//! default five: its right outcome is the rollback, and what it shows is the blast radius.

use crate::rollout::summary::Summary;

pub const NAME: &str = "canary-analysis";
pub const SPEC: &str = include_str!("../../../../../examples/canary-analysis.yaml");

/// The outcome this demo wants: rolled back by the analysis.
pub fn as_expected(row: &Summary) -> bool {
    !row.succeeded
        && row
            .rollback_reason
            .as_deref()
            .is_some_and(|why| why.starts_with("analysis failed"))
}

/// The blast radius under the table: the failed requests by version, and why it stopped.
pub fn render_blast_radius(row: &Summary) -> String {
    let from_versions: u64 = row.report.failed_by_version.values().sum();
    let by_version: Vec<String> = row
        .report
        .failed_by_version
        .iter()
        .map(|(version, n)| format!("{n} from {version}"))
        .collect();
    let by_version = if by_version.is_empty() {
        "none".to_string()
    } else {
        by_version.join(", ")
    };
    let mut out = format!(
        "\n{NAME}: blast radius {} failed requests of {} ({by_version}; {} without an answer)\n",
        row.failed,
        row.total,
        row.failed.saturating_sub(from_versions)
    );
    if let Some(why) = &row.rollback_reason {
        out.push_str(&format!("  {why}\n"));
    }
    out
}

//! `prometheus-targets.json` in the run directory: the ready replicas as a Prometheus file_sd
//! target list (labels `version` and `pod`), rewritten whenever they change, so a Prometheus
//! started by a test or a user (`file_sd_configs`) scrapes every replica of both versions.
//! Written to a temporary file and renamed: Prometheus never reads half a list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio::task::JoinHandle;
use zdd_router::Endpoint;

use super::supervisor::Supervisor;

pub const FILE: &str = "prometheus-targets.json";

/// Keeps the file current until the task is aborted.
pub fn spawn(supervisor: Supervisor, run_dir: PathBuf) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut changes = supervisor.subscribe();
        let mut last = None;
        loop {
            let current = supervisor.ready_endpoints();
            if last.as_ref() != Some(&current) {
                if let Err(err) = write(&run_dir, &current) {
                    tracing::warn!("cannot write {FILE}: {err}");
                }
                last = Some(current);
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    })
}

fn write(run_dir: &Path, endpoints: &BTreeMap<String, Vec<Endpoint>>) -> std::io::Result<()> {
    let groups: Vec<serde_json::Value> = endpoints
        .values()
        .flatten()
        .map(|endpoint| {
            serde_json::json!({
                "targets": [endpoint.addr.to_string()],
                "labels": { "version": endpoint.version, "pod": endpoint.pod },
            })
        })
        .collect();
    let text = serde_json::to_string_pretty(&groups).map_err(std::io::Error::other)?;
    let temporary = run_dir.join(format!("{FILE}.tmp"));
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, run_dir.join(FILE))
}

//! Keeps `zdd status` current while a run goes on: elapsed time, the probe's counts, the nodes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use zdd_probe::ProbeHandle;

use crate::engine::control::Control;
use crate::platform::NodeMaintenance;

/// Refreshes the run's status every 200 ms (elapsed time, the nodes and, with traffic, the
/// probe's counts), until stopped or dropped.
pub(super) struct StatusTicker(tokio::task::JoinHandle<()>);

impl StatusTicker {
    pub(super) fn start(
        control: Control,
        probe: Option<Arc<ProbeHandle>>,
        nodes: Arc<dyn NodeMaintenance>,
    ) -> StatusTicker {
        let started = Instant::now();
        StatusTicker(tokio::spawn(async move {
            loop {
                let progress = probe.as_ref().map(|probe| probe.progress());
                // Nodes change beside the engine's steps too (`zdd drain`).
                let node_statuses = nodes.statuses();
                control.update(|s| {
                    s.elapsed_s = started.elapsed().as_secs_f64();
                    s.nodes = node_statuses;
                    if let Some(progress) = progress {
                        s.sent = progress.sent;
                        s.ok = progress.ok;
                        s.failed = progress.failed;
                        s.by_version = progress.by_version;
                    }
                });
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }))
    }

    /// Stops the ticker and waits until its task (and its share of the probe) is gone.
    pub(super) async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for StatusTicker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

//! The engine's steps on nodes: drain one, keep it down, return it. The platform does the work
//! (cordon, evictions through the disruption budget, the pods' terminations); these steps run it
//! under the guard, like every step, and keep `zdd status` current.

use std::time::Duration;

use super::{Engine, EngineError};
use crate::events::Event;
use crate::platform::Platform;

impl<P: Platform> Engine<'_, P> {
    /// The platform's nodes, in order.
    pub fn node_names(&self) -> Vec<String> {
        self.platform.nodes().names()
    }

    /// `kubectl drain NODE`: returns once every evicted pod is gone; an eviction the disruption
    /// budget refuses for longer than `eviction_timeout` fails the step.
    pub async fn drain_node(
        &mut self,
        node: &str,
        eviction_timeout: Duration,
    ) -> Result<Vec<String>, EngineError> {
        let nodes = self.platform.nodes();
        let guard = self.guard.clone();
        let drained = guard.run(nodes.drain(node, eviction_timeout)).await;
        self.refresh_status().await;
        drained
    }

    /// The node is down (its upgrade) for `downtime`: it stays cordoned and empty.
    pub async fn node_down(&mut self, node: &str, downtime: Duration) -> Result<(), EngineError> {
        self.events.emit(Event::NodeDown {
            node: node.to_owned(),
            downtime,
        });
        self.guarded(tokio::time::sleep(downtime)).await
    }

    /// `kubectl uncordon NODE`: the node takes pods again (pending ones first).
    pub async fn return_node(&mut self, node: &str) -> Result<(), EngineError> {
        self.platform.nodes().uncordon(node)?;
        self.refresh_status().await;
        Ok(())
    }
}

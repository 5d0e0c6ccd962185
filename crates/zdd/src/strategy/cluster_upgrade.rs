//! A cluster upgrade, the way a managed cluster upgrades its nodes: one node at a time, drain it
//! (cordon, evict every pod through the disruption budget, wait until they are gone), keep it down
//! for the node's upgrade, return it. The app's version does not change; what it costs the app
//! is what anti-affinity, the PodDisruptionBudget and preStop are for (docs/strategies/
//! cluster-upgrade.md). A drain that cannot finish (an eviction blocked by the budget longer than
//! `eviction_timeout`) returns its node and fails the upgrade: nothing to roll back.

use std::time::Duration;

use crate::engine::control::Interrupt;
use crate::engine::{Engine, EngineError, Which};
use crate::platform::Platform;

pub async fn run<P: Platform>(
    engine: &mut Engine<'_, P>,
    node_downtime: Duration,
    eviction_timeout: Duration,
) -> Result<(), EngineError> {
    let nodes = engine.node_names();
    for (index, node) in nodes.iter().enumerate() {
        let step = format!("upgrade {node}");
        engine.step_started(index, nodes.len(), &step);
        if let Err(err) = engine.drain_node(node, eviction_timeout).await {
            // Not left cordoned by a failed or aborted upgrade (a signal shuts it all down).
            if !matches!(err, EngineError::Interrupted(Interrupt::Signal { .. })) {
                engine.return_node(node).await?;
            }
            return Err(err);
        }
        engine.node_down(node, node_downtime).await?;
        engine.return_node(node).await?;
        engine.step_finished(index, nodes.len(), &step);
    }
    // The last node's replacements start once it is back: the run ends at full strength.
    let replicas = engine.replicas();
    engine.wait_ready(Which::Old, replicas).await?;
    Ok(())
}

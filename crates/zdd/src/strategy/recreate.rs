//! Recreate: every old replica goes, then the new ones come. There is always a gap; zdd measures it.
//!
//! This is the one strategy that retires the old version without the data-plane check
//! ([`Retire::WithDowntime`](crate::engine::Retire::WithDowntime)): with
//! nothing else to send traffic to, the check could never pass. That is the point of the demo.

use crate::engine::{Engine, EngineError, Retire, Which};
use crate::platform::Platform;

pub async fn run<P: Platform>(engine: &mut Engine<'_, P>) -> Result<(), EngineError> {
    let replicas = engine.replicas();
    let total = 2;
    let step = format!("scale {} to 0", engine.name(Which::Old));
    engine.step_started(0, total, &step);
    engine.retire(Which::Old, Retire::WithDowntime).await?;
    engine.wait_running_at_most(Which::Old, 0).await?;
    engine.step_finished(0, total, &step);

    let step = format!("scale {} to {replicas}", engine.name(Which::New));
    engine.step_started(1, total, &step);
    engine.scale(Which::New, replicas).await?;
    engine.wait_ready(Which::New, replicas).await?;
    // The gap ends when users are served again, not when the replicas are ready: the router
    // learns about them after the propagation delay.
    engine.wait_main_serves(Which::New).await?;
    engine.step_finished(1, total, &step);
    Ok(())
}

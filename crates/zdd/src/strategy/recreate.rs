//! Recreate: every old replica goes, then the new ones come. There is always a gap; zdd measures it.
//!
//! This is the one strategy that scales the old version to zero without the data-plane check: with
//! nothing else to send traffic to, the check could never pass. That is the point of the demo.

use crate::engine::{Engine, EngineError, Which};
use crate::platform::Platform;

pub async fn run<P: Platform>(engine: &mut Engine<'_, P>) -> Result<(), EngineError> {
    let replicas = engine.replicas();
    let total = 2;
    let step = format!("scale {} to 0", engine.name(Which::From));
    engine.step_started(0, total, &step);
    engine.scale(Which::From, 0).await?;
    engine.wait_running_at_most(Which::From, 0).await?;
    engine.step_finished(0, total, &step);

    let step = format!("scale {} to {replicas}", engine.name(Which::To));
    engine.step_started(1, total, &step);
    engine.scale(Which::To, replicas).await?;
    engine.wait_ready(Which::To, replicas).await?;
    // The gap ends when users are served again, not when the replicas are ready: the router
    // learns about them after the propagation delay.
    engine.wait_main_serves(Which::To).await?;
    engine.step_finished(1, total, &step);
    Ok(())
}

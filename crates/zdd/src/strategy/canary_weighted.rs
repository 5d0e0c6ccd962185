//! Canary by weight: the router splits traffic between the versions by weight, independent of
//! replica counts. `setWeight` first gives the canary enough replicas for its share (at least
//! one) and, the first time, proves the router reaches it; `pause` waits a duration or for
//! `zdd promote`. After the last step the new version gets all replicas and 100%, and the old one
//! is retired once the probe's traffic shows none of it reaches the old version.

use crate::engine::{Engine, EngineError, Which};
use crate::platform::Platform;
use crate::spec::CanaryStep;

pub async fn run<P: Platform>(
    engine: &mut Engine<'_, P>,
    steps: &[CanaryStep],
) -> Result<(), EngineError> {
    let replicas = engine.replicas();
    let total = steps.len() + 1;
    let mut canary_replicas = 0u32;
    let mut reachable = false;
    for (index, step) in steps.iter().enumerate() {
        let description = step.to_string();
        engine.step_started(index, total, &description);
        match step {
            CanaryStep::SetWeight(weight) => {
                let needed = (replicas * weight).div_ceil(100).max(1);
                if needed > canary_replicas {
                    engine.scale(Which::To, needed).await?;
                    engine.wait_ready(Which::To, needed).await?;
                    canary_replicas = needed;
                }
                if *weight > 0 && !reachable {
                    engine.ensure_reachable(Which::To).await?;
                    reachable = true;
                }
                engine.set_weight(*weight).await?;
            }
            CanaryStep::Pause(duration) => engine.pause(*duration).await?,
            CanaryStep::SetReplicas { .. } => {
                return Err(EngineError::Other(
                    "setReplicas in a canary by weight (the spec check should have refused it)"
                        .into(),
                ));
            }
        }
        engine.step_finished(index, total, &description);
    }
    let description = format!(
        "promote: {} to {replicas} replicas and 100%",
        engine.name(Which::To)
    );
    engine.step_started(total - 1, total, &description);
    if canary_replicas < replicas {
        engine.scale(Which::To, replicas).await?;
        engine.wait_ready(Which::To, replicas).await?;
    }
    engine.retire(Which::From).await?;
    engine.step_finished(total - 1, total, &description);
    Ok(())
}

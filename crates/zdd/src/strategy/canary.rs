//! Canary by replicas: both versions behind one route, each step sets how many replicas each
//! version has, so the share of traffic follows the replica ratio (the talk's 3/1 → 2/2 → 1/3).
//! Within a step the version that grows is scaled up and ready before the other shrinks. After
//! the last step the new version gets all replicas and the old one is retired (data-plane check).

use crate::engine::{Engine, EngineError, Which};
use crate::platform::Platform;
use crate::spec::CanaryStep;

pub async fn run<P: Platform>(
    engine: &mut Engine<'_, P>,
    steps: &[CanaryStep],
) -> Result<(), EngineError> {
    let replicas = engine.replicas();
    let total = steps.len() + 1;
    let (mut from, mut to) = (replicas, 0u32);
    for (index, step) in steps.iter().enumerate() {
        let description = step.to_string();
        engine.step_started(index, total, &description);
        match step {
            CanaryStep::SetReplicas {
                from: from_target,
                to: to_target,
            } => {
                set_replicas(engine, &mut from, &mut to, *from_target, *to_target).await?;
            }
            CanaryStep::Pause(duration) => engine.pause(*duration).await?,
            CanaryStep::SetWeight(_) => {
                return Err(EngineError::Other(
                    "setWeight in a canary by replicas (the spec check should have refused it)"
                        .into(),
                ));
            }
        }
        engine.step_finished(index, total, &description);
    }
    let description = format!(
        "promote: {} to {replicas}, old version retired",
        engine.name(Which::To)
    );
    engine.step_started(total - 1, total, &description);
    set_replicas(engine, &mut from, &mut to, 0, replicas).await?;
    engine.step_finished(total - 1, total, &description);
    Ok(())
}

/// Grows first (and waits for readiness), then shrinks; a version going to zero is retired.
async fn set_replicas<P: Platform>(
    engine: &mut Engine<'_, P>,
    from: &mut u32,
    to: &mut u32,
    from_target: u32,
    to_target: u32,
) -> Result<(), EngineError> {
    for (which, current, target) in [
        (Which::To, *to, to_target),
        (Which::From, *from, from_target),
    ] {
        if target > current {
            engine.scale(which, target).await?;
            engine.wait_ready(which, target).await?;
        }
    }
    for (which, current, target) in [
        (Which::From, *from, from_target),
        (Which::To, *to, to_target),
    ] {
        if target < current {
            if target == 0 {
                engine.retire(which).await?;
            } else {
                engine.scale(which, target).await?;
            }
        }
    }
    (*from, *to) = (from_target, to_target);
    Ok(())
}

//! Canary by replicas: both versions behind one route, each step sets how many replicas each
//! version has, so the share of traffic follows the replica ratio (the talk's 3/1 → 2/2 → 1/3).
//! Within a step the version that grows is scaled up and ready before the other shrinks. After
//! the last step the new version gets all replicas and the old one is retired (data-plane check).

use super::steps::{self, Canary};
use crate::engine::{Engine, EngineError, Retire, Which};
use crate::platform::Platform;
use crate::spec::CanaryStep;

pub async fn run<P: Platform>(
    engine: &mut Engine<'_, P>,
    steps: &[CanaryStep],
) -> Result<(), EngineError> {
    let canary = ByReplicas {
        from: engine.replicas(),
        to: 0,
    };
    steps::run(engine, steps, canary).await
}

/// The replicas each version has now.
struct ByReplicas {
    from: u32,
    to: u32,
}

impl Canary for ByReplicas {
    const NAME: &'static str = "canary by replicas";

    async fn apply<P: Platform>(
        &mut self,
        engine: &mut Engine<'_, P>,
        step: &CanaryStep,
    ) -> Result<(), EngineError> {
        match step {
            CanaryStep::SetReplicas { from, to } => self.set_replicas(engine, *from, *to).await,
            other => Err(Self::misplaced(other)),
        }
    }

    fn promote_description(&self, new: &str, replicas: u32) -> String {
        format!("promote: {new} to {replicas}, old version retired")
    }

    async fn promote<P: Platform>(
        &mut self,
        engine: &mut Engine<'_, P>,
    ) -> Result<(), EngineError> {
        let replicas = engine.replicas();
        self.set_replicas(engine, 0, replicas).await
    }
}

impl ByReplicas {
    /// Grows first (and waits for readiness), then shrinks; a version going to zero is retired.
    async fn set_replicas<P: Platform>(
        &mut self,
        engine: &mut Engine<'_, P>,
        from_target: u32,
        to_target: u32,
    ) -> Result<(), EngineError> {
        for (which, current, target) in [
            (Which::New, self.to, to_target),
            (Which::Old, self.from, from_target),
        ] {
            if target > current {
                steps::grow(engine, which, target).await?;
            }
        }
        for (which, current, target) in [
            (Which::Old, self.from, from_target),
            (Which::New, self.to, to_target),
        ] {
            if target < current {
                if target == 0 {
                    engine.retire(which, Retire::AfterDrainCheck).await?;
                } else {
                    engine.scale(which, target).await?;
                }
            }
        }
        (self.from, self.to) = (from_target, to_target);
        Ok(())
    }
}

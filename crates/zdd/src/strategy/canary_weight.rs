//! Canary by weight: the router splits traffic between the versions by weight, independent of
//! replica counts. `setWeight` first gives the canary enough replicas for its share (at least
//! one) and, the first time, proves the router reaches it; `pause` waits a duration or for
//! `zdd promote`. After the last step the new version gets all replicas and 100%, and the old one
//! is retired once the probe's traffic shows none of it reaches the old version.
//! `setHeaderRoute` and `setMirrorRoute` steer matching requests to the canary (or copy them to
//! it) whatever the weights; like a first weight, they first give the canary a replica and prove
//! the router reaches it. The engine drops them before the old version is retired.

use super::steps::{self, Canary};
use crate::engine::{Engine, EngineError, Retire, Which};
use crate::platform::Platform;
use crate::spec::CanaryStep;

pub async fn run<P: Platform>(
    engine: &mut Engine<'_, P>,
    steps: &[CanaryStep],
) -> Result<(), EngineError> {
    steps::run(engine, steps, ByWeight::default()).await
}

#[derive(Default)]
struct ByWeight {
    /// Replicas the canary has been given so far.
    canary_replicas: u32,
    /// Whether the router has been shown to reach the canary.
    reachable: bool,
}

impl Canary for ByWeight {
    const NAME: &'static str = "canary by weight";

    async fn apply<P: Platform>(
        &mut self,
        engine: &mut Engine<'_, P>,
        step: &CanaryStep,
    ) -> Result<(), EngineError> {
        let weight = match step {
            CanaryStep::SetWeight(weight) => *weight,
            CanaryStep::SetHeaderRoute { name, matches } => {
                return match matches {
                    Some(matches) => {
                        self.canary_serves(engine).await?;
                        engine.set_header_route(name, matches.clone()).await
                    }
                    None => engine.remove_header_route(name).await,
                };
            }
            CanaryStep::SetMirrorRoute { name, mirror } => {
                return match mirror {
                    Some(mirror) => {
                        self.canary_serves(engine).await?;
                        engine
                            .set_mirror_route(name, mirror.percent, mirror.matches.clone())
                            .await
                    }
                    None => engine.remove_mirror_route().await,
                };
            }
            step => return Err(Self::misplaced(step)),
        };
        let needed = (engine.replicas() * weight).div_ceil(100).max(1);
        if needed > self.canary_replicas {
            steps::grow(engine, Which::New, needed).await?;
            self.canary_replicas = needed;
        }
        if weight > 0 && !self.reachable {
            engine.ensure_reachable(Which::New).await?;
            self.reachable = true;
        }
        engine.set_weight(weight).await
    }

    fn promote_description(&self, new: &str, replicas: u32) -> String {
        format!("promote: {new} to {replicas} replicas and 100%")
    }

    async fn promote<P: Platform>(
        &mut self,
        engine: &mut Engine<'_, P>,
    ) -> Result<(), EngineError> {
        let replicas = engine.replicas();
        if self.canary_replicas < replicas {
            steps::grow(engine, Which::New, replicas).await?;
        }
        engine.retire(Which::Old, Retire::AfterDrainCheck).await
    }
}

impl ByWeight {
    /// A managed route leads to the canary: it needs a replica the router reaches.
    async fn canary_serves<P: Platform>(
        &mut self,
        engine: &mut Engine<'_, P>,
    ) -> Result<(), EngineError> {
        if self.canary_replicas == 0 {
            steps::grow(engine, Which::New, 1).await?;
            self.canary_replicas = 1;
        }
        if !self.reachable {
            engine.ensure_reachable(Which::New).await?;
            self.reachable = true;
        }
        Ok(())
    }
}

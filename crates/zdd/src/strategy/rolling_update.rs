//! Rolling update, the Deployment controller's way: new replicas come up within `maxSurge`
//! (above the desired count), old ones go while at least `replicas - maxUnavailable` are ready.
//! Both versions serve behind the same route meanwhile. The last old replicas go through
//! [`Engine::retire`]: the route then names only the new version, and the probe's traffic must
//! show that none of it reaches the old one before they are stopped.

use crate::analysis::Analysis;
use crate::engine::{Engine, EngineError, Retire, Which};
use crate::platform::Platform;

pub async fn run<P: Platform>(
    engine: &mut Engine<'_, P>,
    max_surge: u32,
    max_unavailable: u32,
) -> Result<(), EngineError> {
    let replicas = engine.replicas();
    let min_available = replicas.saturating_sub(max_unavailable);
    let old_name = engine.name(Which::Old);
    let new_name = engine.name(Which::New);
    let (mut old, mut new) = (replicas, 0u32);
    let mut index = 0;
    // The analysis judges the new version's answers while it rolls; the last old replica goes
    // only once every metric has passed.
    let mut background = Analysis::for_engine(engine).map(|analysis| analysis.background());
    while old > 0 || new < replicas {
        // Scale up: never more than replicas + maxSurge replicas asked for in total.
        let new_target = replicas.min((replicas + max_surge).saturating_sub(old));
        if new_target > new {
            let step = format!("scale {new_name} to {new_target}");
            engine.step_started(index, 0, &step);
            engine.scale(Which::New, new_target).await?;
            engine.step_finished(index, 0, &step);
            index += 1;
            new = new_target;
        }

        // Scale down: unready old replicas may go at once; ready ones while enough stay ready.
        let (old_ready, new_ready) = engine.ready_counts().await?;
        let (old_ready, new_ready) = (old_ready.min(old), new_ready.min(new));
        let spare = (old_ready + new_ready).saturating_sub(min_available);
        let removable = if new_ready >= replicas {
            old
        } else {
            old.min(old - old_ready + spare)
        };
        if removable == 0 {
            // Nothing may go yet: wait for one more new replica to become ready.
            if new_ready < new {
                engine.wait_ready(Which::New, new_ready + 1).await?;
            } else {
                // Counts in flux (a replica restarting): look again shortly.
                engine
                    .guarded(tokio::time::sleep(std::time::Duration::from_millis(100)))
                    .await?;
            }
            continue;
        }
        let old_target = old - removable;
        let step = format!("scale {old_name} to {old_target}");
        engine.step_started(index, 0, &step);
        if old_target == 0 {
            if let Some(background) = background.take() {
                background.finish(engine).await?;
            }
            engine.retire(Which::Old, Retire::AfterDrainCheck).await?;
        } else {
            engine.scale(Which::Old, old_target).await?;
        }
        engine.step_finished(index, 0, &step);
        index += 1;
        old = old_target;
    }
    engine.wait_ready(Which::New, replicas).await?;
    Ok(())
}

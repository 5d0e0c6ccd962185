//! The strategy's steps, and the rollback when one fails: on an interrupt other than a signal
//! (`zdd abort`, the budget) or a failed step, all traffic goes back to the old version and the
//! new one is taken down. A cluster upgrade changes no version: it has nothing to roll back, and a
//! failure only ends it.

use crate::engine::control::{Control, Interrupt, Phase};
use crate::engine::{Engine, EngineError, Retire, Which};
use crate::events::Event;
use crate::model::{Routing, TrafficPolicy};
use crate::platform::Platform;
use crate::strategy;

use super::RunOutcome;

/// Runs the strategy; on an interrupt (other than a signal) or a failed step, rolls back.
pub async fn execute<P: Platform>(engine: &mut Engine<'_, P>) -> RunOutcome {
    let control = engine.control().clone();
    let events = engine.events().clone();
    control.update(|s| s.phase = Phase::Progressing);
    let rollout = engine.spec().strategy.changes_version();
    events.emit(if rollout {
        Event::RolloutStarted {
            from: engine.name(Which::Old),
            to: engine.name(Which::New),
            strategy: engine.spec().strategy.kind().to_string(),
        }
    } else {
        Event::ClusterUpgradeStarted {
            version: engine.name(Which::Old),
            nodes: engine.node_names(),
        }
    });
    let initial = strategy::initial_routing(engine);
    let result = match engine.set_routing(initial).await {
        Ok(()) => strategy::run(engine).await,
        Err(err) => Err(err),
    };
    // The old version's replicas finish their termination before the run ends.
    let result = match result {
        Ok(()) if rollout => engine.wait_running_at_most(Which::Old, 0).await,
        other => other,
    };
    match result {
        Ok(()) => {
            events.emit(if rollout {
                Event::RolloutSucceeded
            } else {
                Event::ClusterUpgradeFinished
            });
            control.update(|s| {
                s.phase = Phase::Succeeded;
                s.step = None;
            });
            RunOutcome::Succeeded
        }
        Err(EngineError::Interrupted(Interrupt::Signal { name })) => {
            events.emit(Event::RolloutInterrupted {
                signal: name.clone(),
            });
            control.update(|s| s.phase = Phase::Interrupted);
            RunOutcome::Interrupted(name)
        }
        Err(err) if !rollout => {
            let why = err.to_string();
            events.emit(Event::ClusterUpgradeFailed {
                reason: why.clone(),
            });
            ended(&control, Phase::Failed, &why);
            RunOutcome::Failed(why)
        }
        Err(err) => {
            let why = err.to_string();
            events.emit(Event::RolloutFailed {
                reason: why.clone(),
            });
            match rollback(engine).await {
                Ok(()) => {
                    ended(&control, Phase::RolledBack, &why);
                    RunOutcome::RolledBack(why)
                }
                Err(rollback) => {
                    let both = format!("{why}; rollback failed: {rollback}");
                    events.emit(Event::RollbackFailed {
                        reason: rollback.to_string(),
                    });
                    ended(&control, Phase::Failed, &both);
                    RunOutcome::Failed(both)
                }
            }
        }
    }
}

/// `zdd status` after a run that did not succeed: its phase and why.
fn ended(control: &Control, phase: Phase, why: &str) {
    control.update(|s| {
        s.phase = phase;
        s.message = Some(why.to_owned());
    });
}

/// All traffic back to the old version, the new one taken down.
async fn rollback<P: Platform>(engine: &mut Engine<'_, P>) -> Result<(), EngineError> {
    engine.stop_guarding();
    engine.control().update(|s| s.phase = Phase::RollingBack);
    let replicas = engine.replicas();
    engine.scale(Which::Old, replicas).await?;
    engine.wait_ready(Which::Old, replicas).await?;
    let main = if engine.main_reaches(Which::New) {
        engine.ensure_reachable(Which::Old).await?;
        TrafficPolicy::Only(engine.name(Which::Old))
    } else {
        engine.routing().main.clone()
    };
    // The preview route (an abort during blue-green's preview) and every managed route (header
    // routes, a mirror) must not outlive the new version.
    engine.set_routing(Routing::main_only(main)).await?;
    engine
        .retire(Which::New, Retire::EvenIfStillReached)
        .await?;
    engine.wait_running_at_most(Which::New, 0).await?;
    engine.events().emit(Event::RolledBack {
        version: engine.name(Which::Old),
    });
    Ok(())
}

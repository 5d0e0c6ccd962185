//! Blue-green: the new version comes up beside the old one with all its replicas, is checked
//! through the preview route, then the main route switches to it at once (automatically or on
//! `zdd promote`). The old version goes only after the data plane shows it gets no request.

use crate::engine::{Engine, EngineError, Retire, Which};
use crate::model::{Routing, TrafficPolicy};
use crate::platform::Platform;

pub async fn run<P: Platform>(
    engine: &mut Engine<'_, P>,
    auto_promote: bool,
    preview_checks: u32,
) -> Result<(), EngineError> {
    let replicas = engine.replicas();
    let new = engine.name(Which::New);
    let total = if auto_promote { 3 } else { 4 };
    let mut index = 0;

    let step = format!("deploy {new} ({replicas} replicas) beside the old version");
    engine.step_started(index, total, &step);
    engine.scale(Which::New, replicas).await?;
    engine.wait_ready(Which::New, replicas).await?;
    engine.step_finished(index, total, &step);
    index += 1;

    let step = format!("check {new} through the preview route ({preview_checks} requests)");
    engine.step_started(index, total, &step);
    // The preview route reaching the new version also proves the router knows its endpoints,
    // so the switch below cannot send traffic to a version the data plane does not know yet.
    engine
        .ensure_reachable_in_a_row(Which::New, preview_checks)
        .await?;
    engine.step_finished(index, total, &step);
    index += 1;

    if !auto_promote {
        let step = "wait for zdd promote".to_string();
        engine.step_started(index, total, &step);
        engine.pause(None).await?;
        engine.step_finished(index, total, &step);
        index += 1;
    }

    let step = format!("switch the main route to {new}, retire the old version");
    engine.step_started(index, total, &step);
    engine
        .set_routing(Routing::main_only(TrafficPolicy::Only(new)))
        .await?;
    engine.retire(Which::Old, Retire::AfterDrainCheck).await?;
    engine.step_finished(index, total, &step);
    Ok(())
}

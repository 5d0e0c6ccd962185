//! Blue-green: the new version comes up beside the old one with all its replicas, is checked
//! through the preview route, then the main route switches to it at once (automatically or on
//! `zdd promote`). The old version goes only after the data plane shows it gets no request.

use crate::analysis::Analysis;
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
    let analysis = Analysis::for_engine(engine);
    let pre = engine
        .spec()
        .analysis
        .as_ref()
        .and_then(|a| a.pre_promotion);
    let post = engine
        .spec()
        .analysis
        .as_ref()
        .and_then(|a| a.post_promotion);
    // Post-promotion analysis splits the last step in three: switch, analysis, retire.
    let total = 3
        + usize::from(!auto_promote)
        + usize::from(pre.is_some())
        + 2 * usize::from(post.is_some());
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

    if let (Some(analysis), Some(duration)) = (&analysis, pre) {
        let step = format!(
            "analysis of {new} through the preview route ({})",
            humantime::format_duration(duration)
        );
        engine.step_started(index, total, &step);
        let Some(preview) = engine.platform().preview_url() else {
            return Err(EngineError::Other(
                "prePromotionAnalysis needs a preview route zdd can reach (--preview-url)".into(),
            ));
        };
        analysis.step_through(engine, &preview, duration).await?;
        engine.step_finished(index, total, &step);
        index += 1;
    }

    if !auto_promote {
        let step = "wait for zdd promote".to_string();
        engine.step_started(index, total, &step);
        engine.pause(None).await?;
        engine.step_finished(index, total, &step);
        index += 1;
    }

    if let (Some(analysis), Some(duration)) = (&analysis, post) {
        let step = format!("switch the main route to {new}");
        engine.step_started(index, total, &step);
        engine
            .set_routing(Routing::main_only(TrafficPolicy::Only(new.clone())))
            .await?;
        engine.step_finished(index, total, &step);
        index += 1;
        let old = engine.name(Which::Old);
        let step = format!(
            "analysis of {new} on the main route ({}), {old} still up",
            humantime::format_duration(duration)
        );
        engine.step_started(index, total, &step);
        analysis.step(engine, duration).await?;
        engine.step_finished(index, total, &step);
        index += 1;
        let step = format!("retire {old}");
        engine.step_started(index, total, &step);
        engine.retire(Which::Old, Retire::AfterDrainCheck).await?;
        engine.step_finished(index, total, &step);
        return Ok(());
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

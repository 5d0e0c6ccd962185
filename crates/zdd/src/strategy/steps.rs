//! What the two canaries share: the spec's steps run in order, each a numbered step of the run,
//! `pause` waits (a duration, or until `zdd promote`) whatever the canary, and a last step
//! promotes the new version. Each canary says only how it applies its own kind of step and how it
//! promotes.

use crate::analysis::Analysis;
use crate::engine::{Engine, EngineError, Which};
use crate::platform::Platform;
use crate::spec::CanaryStep;

/// One kind of canary, with the state it keeps from step to step.
pub(super) trait Canary {
    /// As the spec names it, for the error on a step of the other kind.
    const NAME: &'static str;

    /// Applies a step other than `pause`.
    async fn apply<P: Platform>(
        &mut self,
        engine: &mut Engine<'_, P>,
        step: &CanaryStep,
    ) -> Result<(), EngineError>;

    /// The last step's description: `new` gets all `replicas`.
    fn promote_description(&self, new: &str, replicas: u32) -> String;

    /// The last step: the new version takes over, the old one is retired.
    async fn promote<P: Platform>(&mut self, engine: &mut Engine<'_, P>)
    -> Result<(), EngineError>;

    /// A step of the other canary's kind. The spec check refuses those, so reaching this is a bug.
    fn misplaced(step: &CanaryStep) -> EngineError {
        EngineError::Other(format!(
            "{step} in a {} (the spec check should have refused it)",
            Self::NAME
        ))
    }
}

/// Runs `steps`, then the promote step, as numbered steps of the run.
pub(super) async fn run<P: Platform>(
    engine: &mut Engine<'_, P>,
    steps: &[CanaryStep],
    mut canary: impl Canary,
) -> Result<(), EngineError> {
    let total = steps.len() + 1;
    let analysis = Analysis::for_engine(engine);
    let mut background = None;
    for (index, step) in steps.iter().enumerate() {
        let description = step.to_string();
        engine.step_started(index, total, &description);
        if let Some(analysis) = &analysis
            && background.is_none()
            && index + 1 >= analysis.starting_step()
        {
            background = Some(analysis.background());
        }
        match step {
            CanaryStep::Pause(duration) => engine.pause(*duration).await?,
            CanaryStep::Analysis(duration) => match &analysis {
                Some(analysis) => analysis.step(engine, *duration).await?,
                None => {
                    return Err(EngineError::Other(
                        "an analysis step without an `analysis:` block (the spec check should \
                         have refused it)"
                            .into(),
                    ));
                }
            },
            step => canary.apply(engine, step).await?,
        }
        engine.step_finished(index, total, &description);
    }
    // The background analysis judges the canary steps; the promotion is the last step's.
    if let Some(background) = background {
        background.finish(engine).await?;
    }
    let description = canary.promote_description(&engine.name(Which::New), engine.replicas());
    engine.step_started(total - 1, total, &description);
    canary.promote(engine).await?;
    engine.step_finished(total - 1, total, &description);
    Ok(())
}

/// Scales `which` up to `replicas` and waits until they are all ready.
pub(super) async fn grow<P: Platform>(
    engine: &mut Engine<'_, P>,
    which: Which,
    replicas: u32,
) -> Result<(), EngineError> {
    engine.scale(which, replicas).await?;
    engine.wait_ready(which, replicas).await?;
    Ok(())
}

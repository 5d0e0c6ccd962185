//! The guard around every step: a step stops as soon as the rollout is interrupted (`zdd abort`,
//! a signal) or the failure budget is exceeded, whatever it was waiting for.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::EngineError;
use super::control::{Control, Interrupt};
use super::traffic::TrafficView;

/// Watches for interrupts and the failure budget while a step runs.
#[derive(Clone)]
pub(super) struct Guard {
    pub(super) control: Control,
    pub(super) traffic: Option<Arc<dyn TrafficView>>,
    /// The budget counts the failures of requests scheduled from here on.
    pub(super) since: Instant,
    pub(super) max_failed: Option<u64>,
    /// Off during a rollback: the rollback itself must not be interrupted by the budget.
    pub(super) active: bool,
}

impl Guard {
    fn check_now(&self) -> Option<Interrupt> {
        if let Some(interrupt) = self.control.interrupted() {
            return Some(interrupt);
        }
        if let (Some(traffic), Some(max_failed)) = (&self.traffic, self.max_failed) {
            let failed = traffic.window(self.since).failed;
            if failed > max_failed {
                let why = Interrupt::BudgetExceeded { failed, max_failed };
                self.control.interrupt(why.clone());
                return Some(why);
            }
        }
        None
    }

    async fn tripped(&self) -> Interrupt {
        let mut interrupts = self.control.subscribe_interrupt();
        loop {
            if let Some(why) = self.check_now() {
                return why;
            }
            tokio::select! {
                _ = interrupts.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Runs `work` unless the guard trips first.
    pub(super) async fn run<T, E>(
        &self,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, EngineError>
    where
        EngineError: From<E>,
    {
        if !self.active {
            return Ok(work.await?);
        }
        if let Some(why) = self.check_now() {
            return Err(EngineError::Interrupted(why));
        }
        tokio::select! {
            result = work => Ok(result?),
            why = self.tripped() => Err(EngineError::Interrupted(why)),
        }
    }
}

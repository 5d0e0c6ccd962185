//! The lifecycle state machine and the shared handle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use tokio::sync::watch;

use crate::config::LifecycleConfig;
use crate::metrics::Metrics;

/// Where the service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Serving, but warm-up is not done: readiness answers 503.
    Starting,
    /// Warm-up done: readiness answers 200.
    Ready,
    /// A shutdown was requested: readiness answers 503, the rest is still served.
    Draining,
    /// The drain has ended.
    Stopped,
}

impl State {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Starting,
            1 => Self::Ready,
            2 => Self::Draining,
            _ => Self::Stopped,
        }
    }

    /// Lower-case name (`starting`, `ready`, `draining`, `stopped`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Draining => "draining",
            Self::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) struct Shared {
    pub(crate) config: LifecycleConfig,
    state: AtomicU8,
    readiness_held_down: AtomicBool,
    liveness_held_down: AtomicBool,
    pub(crate) signals_installed: AtomicBool,
    /// How many shutdowns were requested (signals or code): 1 starts the drain, 2 ends at once.
    pub(crate) shutdown_requests: watch::Sender<u32>,
    pub(crate) metrics: Arc<Metrics>,
}

/// A cheap, cloneable handle on the lifecycle of one service.
///
/// Create it first, pass your app through [`with_probe_routes`](Self::with_probe_routes), call
/// [`mark_ready`](Self::mark_ready) when warm-up is done and [`serve`](Self::serve) it.
#[derive(Clone)]
pub struct Lifecycle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle")
            .field("state", &self.state())
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Lifecycle {
    /// A lifecycle in the [`State::Starting`] state.
    pub fn new(config: LifecycleConfig) -> Self {
        let metrics = Arc::new(Metrics::new(&config.version));
        let (shutdown_requests, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                config,
                state: AtomicU8::new(State::Starting as u8),
                readiness_held_down: AtomicBool::new(false),
                liveness_held_down: AtomicBool::new(false),
                signals_installed: AtomicBool::new(false),
                shutdown_requests,
                metrics,
            }),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &LifecycleConfig {
        &self.shared.config
    }

    /// The metrics (to register an app's own, or to read the in-flight count).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The current state.
    pub fn state(&self) -> State {
        State::from_u8(self.shared.state.load(Ordering::Acquire))
    }

    /// Warm-up is done: starting → ready. Has no effect once draining (a late warm-up must not
    /// make a draining service ready again).
    pub fn mark_ready(&self) -> bool {
        self.transition(State::Starting, State::Ready)
    }

    /// Whether readiness answers 200 now.
    pub fn is_ready(&self) -> bool {
        self.state() == State::Ready && !self.shared.readiness_held_down.load(Ordering::Relaxed)
    }

    /// Whether liveness answers 200 now.
    pub fn is_live(&self) -> bool {
        !self.shared.liveness_held_down.load(Ordering::Relaxed)
    }

    /// Whether a shutdown has begun (draining or stopped).
    pub fn is_shutting_down(&self) -> bool {
        matches!(self.state(), State::Draining | State::Stopped)
    }

    /// Demo toggle: hold readiness at 503 (`false`) or release it (`true`). It never makes a
    /// starting or draining service ready.
    pub fn set_readiness(&self, ready: bool) {
        self.shared
            .readiness_held_down
            .store(!ready, Ordering::Relaxed);
    }

    /// Demo toggle: make liveness answer 503 (`false`) or 200 (`true`).
    pub fn set_liveness(&self, live: bool) {
        self.shared
            .liveness_held_down
            .store(!live, Ordering::Relaxed);
    }

    /// Requests a shutdown, exactly like SIGTERM: the first call starts the drain, a second call
    /// while draining ends [`serve`](Self::serve) at once.
    pub fn request_shutdown(&self) {
        // The state changes here, not in the serve loop, so readiness fails at once.
        if !self.transition(State::Starting, State::Draining) {
            self.transition(State::Ready, State::Draining);
        }
        self.shared
            .shutdown_requests
            .send_modify(|count| *count += 1);
    }

    pub(crate) fn mark_stopped(&self) {
        self.shared
            .state
            .store(State::Stopped as u8, Ordering::Release);
        self.shared.metrics.record_state(State::Stopped);
    }

    fn transition(&self, from: State, to: State) -> bool {
        let changed = self
            .shared
            .state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if changed {
            self.shared.metrics.record_state(to);
            tracing::info!(from = %from, to = %to, "lifecycle state changed");
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_then_drain() {
        let lifecycle = Lifecycle::new(LifecycleConfig::default());
        assert_eq!(lifecycle.state(), State::Starting);
        assert!(!lifecycle.is_ready());
        assert!(lifecycle.mark_ready());
        assert!(lifecycle.is_ready());
        lifecycle.request_shutdown();
        assert_eq!(lifecycle.state(), State::Draining);
        assert!(!lifecycle.is_ready());
        assert!(lifecycle.is_live());
    }

    #[test]
    fn late_warm_up_does_not_undo_a_drain() {
        let lifecycle = Lifecycle::new(LifecycleConfig::default());
        lifecycle.request_shutdown();
        assert!(!lifecycle.mark_ready());
        assert_eq!(lifecycle.state(), State::Draining);
    }

    #[test]
    fn toggles_hold_probes_down_without_changing_state() {
        let lifecycle = Lifecycle::new(LifecycleConfig::default());
        lifecycle.mark_ready();
        lifecycle.set_readiness(false);
        assert!(!lifecycle.is_ready());
        assert_eq!(lifecycle.state(), State::Ready);
        lifecycle.set_readiness(true);
        assert!(lifecycle.is_ready());
        lifecycle.set_liveness(false);
        assert!(!lifecycle.is_live());
    }
}

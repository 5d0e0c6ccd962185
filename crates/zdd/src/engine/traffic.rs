//! The probe's live counters, as the engine reads them (a trait so tests can fake traffic).

use std::time::Instant;

use zdd_probe::{ProbeHandle, WindowStats};

pub trait TrafficView: Send + Sync {
    /// Outcomes of requests scheduled at or after `since` (see [`ProbeHandle::window`]).
    fn window(&self, since: Instant) -> WindowStats;
}

impl TrafficView for ProbeHandle {
    fn window(&self, since: Instant) -> WindowStats {
        ProbeHandle::window(self, since)
    }
}

//! The probe's live counters, as the engine reads them (a trait so tests can fake traffic).

use std::collections::BTreeMap;
use std::time::Instant;

use zdd_probe::{ProbeHandle, VersionWindow, WindowStats};

pub trait TrafficView: Send + Sync {
    /// Outcomes of requests scheduled at or after `since` (see [`ProbeHandle::window`]).
    fn window(&self, since: Instant) -> WindowStats;

    /// Each version's answers in `from..to`, for analysis (see
    /// [`ProbeHandle::versions_between`]). A view that cannot tell versions apart has none.
    fn versions_between(&self, _from: Instant, _to: Instant) -> BTreeMap<String, VersionWindow> {
        BTreeMap::new()
    }
}

impl TrafficView for ProbeHandle {
    fn window(&self, since: Instant) -> WindowStats {
        ProbeHandle::window(self, since)
    }

    fn versions_between(&self, from: Instant, to: Instant) -> BTreeMap<String, VersionWindow> {
        ProbeHandle::versions_between(self, from, to)
    }
}

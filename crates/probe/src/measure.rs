//! Per-version measurements for analysis: for each version and each 1-second slot (by scheduled
//! time), the answers, the failures and an HDR histogram of latencies. Merged over any span of
//! whole slots on request, so zdd can judge "the new version, the last 2 s" cheaply. Only the
//! last [`KEEP`] of slots are kept: analysis reads recent intervals, and memory stays bounded.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Width of a slot.
pub const SLOT: Duration = Duration::from_secs(1);
/// Slots older than this are dropped: analysis reads the last seconds. With [`MAX_US`] a
/// version's slot holds a 10 KiB histogram, so two versions keep at most about 6 MB.
const KEEP: Duration = Duration::from_secs(5 * 60);
/// Latencies above this (µs) count as this; beyond any sensible probe timeout.
const MAX_US: u64 = 60_000_000;

/// One version's requests in a span of time.
#[derive(Clone, Debug)]
pub struct VersionWindow {
    /// Answers counted as success (2xx, 3xx).
    pub ok: u64,
    /// Answers counted as failure (4xx, 5xx) that named this version.
    pub failed: u64,
    latency: Histogram<u32>,
}

impl Default for VersionWindow {
    fn default() -> Self {
        VersionWindow {
            ok: 0,
            failed: 0,
            latency: Histogram::new_with_bounds(1, MAX_US, 2).expect("valid bounds"),
        }
    }
}

impl VersionWindow {
    pub fn requests(&self) -> u64 {
        self.ok + self.failed
    }

    /// Share of answers that succeeded, 0..=1 (`None` without answers).
    pub fn success_rate(&self) -> Option<f64> {
        (self.requests() > 0).then(|| self.ok as f64 / self.requests() as f64)
    }

    /// The latency at `quantile` (0..=1) of the answers, `None` without answers.
    pub fn latency(&self, quantile: f64) -> Option<Duration> {
        (!self.latency.is_empty())
            .then(|| Duration::from_micros(self.latency.value_at_quantile(quantile)))
    }

    /// Adds one answer (for tests and fakes of a traffic view).
    pub fn record(&mut self, ok: bool, latency: Duration) {
        if ok {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
        self.latency
            .saturating_record((latency.as_micros() as u64).clamp(1, MAX_US));
    }

    fn add(&mut self, other: &VersionWindow) {
        self.ok += other.ok;
        self.failed += other.failed;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }
}

/// The slots, oldest first.
#[derive(Default)]
pub(crate) struct VersionSlots {
    /// (slot index since time zero, per version name).
    slots: VecDeque<(u64, BTreeMap<String, VersionWindow>)>,
}

pub(crate) fn slot_index(at: Duration) -> u64 {
    at.as_secs()
}

impl VersionSlots {
    /// One answer of `version`, scheduled at `scheduled` since time zero.
    pub(crate) fn record(
        &mut self,
        scheduled: Duration,
        version: &str,
        ok: bool,
        latency: Duration,
    ) {
        let index = slot_index(scheduled);
        let position = match self.slots.iter().rposition(|(i, _)| *i <= index) {
            Some(p) if self.slots[p].0 == index => p,
            Some(p) => {
                self.slots.insert(p + 1, (index, BTreeMap::new()));
                p + 1
            }
            None => {
                self.slots.push_front((index, BTreeMap::new()));
                0
            }
        };
        let versions = &mut self.slots[position].1;
        // No allocation per answer: the name is copied once per slot.
        match versions.get_mut(version) {
            Some(window) => window.record(ok, latency),
            None => versions
                .entry(version.to_string())
                .or_default()
                .record(ok, latency),
        }
        let keep = KEEP.as_secs();
        while self.slots.front().is_some_and(|(i, _)| i + keep < index) {
            self.slots.pop_front();
        }
    }

    /// Every version's requests in slots `from..to` (indexes since time zero).
    pub(crate) fn between(&self, from: u64, to: u64) -> BTreeMap<String, VersionWindow> {
        let mut merged: BTreeMap<String, VersionWindow> = BTreeMap::new();
        for (_, versions) in self.slots.iter().filter(|(i, _)| (from..to).contains(i)) {
            for (name, window) in versions {
                merged.entry(name.clone()).or_default().add(window);
            }
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn slots_merge_per_version_over_whole_seconds() {
        let mut slots = VersionSlots::default();
        for i in 0..100 {
            slots.record(MS(i * 10), "v1", true, MS(5));
            slots.record(MS(1000 + i * 10), "v2", i % 10 != 0, MS(i + 1));
        }
        slots.record(MS(2500), "v2", true, MS(1));
        let first = slots.between(0, 1);
        assert_eq!(first["v1"].ok, 100);
        assert!(!first.contains_key("v2"));
        let second = slots.between(1, 2);
        let v2 = &second["v2"];
        assert_eq!((v2.ok, v2.failed), (90, 10));
        assert_eq!(v2.success_rate(), Some(0.9));
        let p99 = v2.latency(0.99).unwrap();
        assert!(p99 >= MS(98) && p99 <= MS(101), "{p99:?}");
        assert_eq!(slots.between(0, 3)["v2"].requests(), 101);
    }

    #[test]
    fn old_slots_are_dropped() {
        let mut slots = VersionSlots::default();
        slots.record(MS(0), "v1", true, MS(1));
        slots.record(KEEP + Duration::from_secs(5), "v1", true, MS(1));
        assert!(slots.between(0, 1).is_empty());
        assert_eq!(slots.slots.len(), 1);
    }
}

//! Aggregates outcomes as they complete, in bounded memory: totals, one HDR histogram, 100 ms
//! timeline buckets (by scheduled time) and the outage tracker. No per-request record is kept
//! beyond the few still being reordered.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::WindowStats;
use crate::measure::{VersionSlots, VersionWindow};
use crate::outcome::{FailureKind, RequestOutcome};
use crate::report::{Latency, Outage, Report, TimelineBucket};

/// Width of a timeline bucket.
pub(crate) const BUCKET: Duration = Duration::from_millis(100);
const BUCKET_NS: u64 = BUCKET.as_nanos() as u64;
/// Distinct version names tracked; more are counted as `(other)` (a misbehaving header).
const MAX_VERSIONS: usize = 64;
const UNKNOWN_VERSION: &str = "unknown";
const OTHER_VERSION: &str = "(other)";
/// Outages listed in the report; the rest are counted.
const MAX_OUTAGES: usize = 1000;
/// Latency range of the histograms, in microseconds.
const MAX_LATENCY_US: u64 = 3_600_000_000;

#[derive(Default)]
struct Bucket {
    ok: u32,
    failed: [u32; FailureKind::COUNT],
    /// (version id, ok count); a handful of entries at most.
    by_version: Vec<(u16, u32)>,
    p99_us: Option<u32>,
}

impl Bucket {
    fn failed_total(&self) -> u64 {
        self.failed.iter().map(|n| u64::from(*n)).sum()
    }
}

/// One finished request, as the aggregator sees it.
pub(crate) struct Completion {
    pub seq: u64,
    /// Scheduled send time, since time zero.
    pub scheduled: Duration,
    pub outcome: RequestOutcome,
    /// From the scheduled send time to the end of the answer.
    pub latency: Duration,
}

pub(crate) struct Aggregator {
    ok: u64,
    failed: [u64; FailureKind::COUNT],
    versions: Vec<String>,
    version_ids: HashMap<String, u16>,
    by_version: Vec<u64>,
    latency: Histogram<u64>,
    /// Index (since time zero) of `buckets[0]`.
    first_bucket: u64,
    buckets: Vec<Bucket>,
    /// Per-bucket histograms for buckets that may still receive answers (bounded by the timeout).
    open_histograms: VecDeque<(u64, Histogram<u32>)>,
    spare_histograms: Vec<Histogram<u32>>,
    /// A bucket's p99 is final once this long has passed since its end.
    settle: Duration,
    outages: OutageTracker,
    /// Per version and second, for analysis.
    version_slots: VersionSlots,
    /// Failed answers that named their version.
    failed_by_version: BTreeMap<String, u64>,
    segments: crate::segments::SegmentCounts,
    version_latency: crate::version_latency::VersionLatency,
}

impl Aggregator {
    pub(crate) fn new(start: Duration, interval: Duration, timeout: Duration) -> Self {
        Aggregator {
            ok: 0,
            failed: [0; FailureKind::COUNT],
            versions: Vec::new(),
            version_ids: HashMap::new(),
            by_version: Vec::new(),
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds"),
            first_bucket: bucket_index(start),
            buckets: Vec::new(),
            open_histograms: VecDeque::new(),
            spare_histograms: Vec::new(),
            settle: timeout + Duration::from_secs(1),
            outages: OutageTracker::new(interval),
            version_slots: VersionSlots::default(),
            failed_by_version: BTreeMap::new(),
            segments: Default::default(),
            version_latency: Default::default(),
        }
    }

    /// Counts `segments` apart (see `segments`).
    pub(crate) fn with_segments(mut self, segments: &[crate::segments::Segment]) -> Self {
        self.segments = crate::segments::SegmentCounts::new(segments);
        self
    }

    /// The segments' counts and each version's latency, taken out for the report.
    pub(crate) fn apart(
        &mut self,
    ) -> (
        Vec<crate::segments::SegmentReport>,
        BTreeMap<String, Latency>,
    ) {
        (
            std::mem::take(&mut self.segments).finish(),
            self.version_latency.finish(),
        )
    }

    pub(crate) fn ok(&self) -> u64 {
        self.ok
    }

    pub(crate) fn failed(&self) -> u64 {
        self.failed.iter().sum()
    }

    pub(crate) fn by_version(&self) -> BTreeMap<String, u64> {
        self.versions
            .iter()
            .zip(&self.by_version)
            .map(|(v, n)| (v.clone(), *n))
            .collect()
    }

    /// Records one finished request; `now` is the current time since time zero.
    pub(crate) fn record(&mut self, completion: Completion, now: Duration) {
        let index = bucket_index(completion.scheduled).max(self.first_bucket);
        let slot = (index - self.first_bucket) as usize;
        if self.buckets.len() <= slot {
            self.buckets.resize_with(slot + 1, Bucket::default);
        }
        let latency_us = (completion.latency.as_micros() as u64).max(1);
        self.segments
            .record(completion.seq, completion.scheduled, &completion.outcome);
        self.version_latency
            .record(&completion.outcome, completion.latency);
        let answered = match &completion.outcome {
            RequestOutcome::Ok { version } => {
                self.ok += 1;
                let id = self.version_id(version.as_deref());
                self.by_version[usize::from(id)] += 1;
                let bucket = &mut self.buckets[slot];
                bucket.ok += 1;
                match bucket.by_version.iter_mut().find(|(v, _)| *v == id) {
                    Some((_, n)) => *n += 1,
                    None => bucket.by_version.push((id, 1)),
                }
                true
            }
            RequestOutcome::Failed {
                kind,
                answered,
                version,
            } => {
                self.failed[kind.index()] += 1;
                self.buckets[slot].failed[kind.index()] += 1;
                if let (true, Some(name)) = (*answered, version.as_deref()) {
                    *self.failed_by_version.entry(name.to_string()).or_default() += 1;
                }
                if *answered {
                    let name = version.as_deref().unwrap_or(UNKNOWN_VERSION);
                    self.version_slots.record(
                        completion.scheduled,
                        name,
                        false,
                        completion.latency,
                    );
                }
                *answered
            }
        };
        if let RequestOutcome::Ok { version } = &completion.outcome {
            let name = version.as_deref().unwrap_or(UNKNOWN_VERSION);
            self.version_slots
                .record(completion.scheduled, name, true, completion.latency);
        }
        if answered {
            self.latency.saturating_record(latency_us);
            if let Some(histogram) = self.open_histogram(index, now) {
                histogram.saturating_record(latency_us);
            }
        }
        let failure = match completion.outcome {
            RequestOutcome::Ok { .. } => None,
            RequestOutcome::Failed { kind, .. } => Some(kind),
        };
        self.outages
            .record(completion.seq, completion.scheduled, failure);
        self.settle_histograms(now);
    }

    fn version_id(&mut self, version: Option<&str>) -> u16 {
        let name = version.unwrap_or(UNKNOWN_VERSION);
        if let Some(id) = self.version_ids.get(name) {
            return *id;
        }
        let name = if self.versions.len() >= MAX_VERSIONS {
            OTHER_VERSION
        } else {
            name
        };
        if let Some(id) = self.version_ids.get(name) {
            return *id;
        }
        let id = self.versions.len() as u16;
        self.versions.push(name.to_string());
        self.version_ids.insert(name.to_string(), id);
        self.by_version.push(0);
        id
    }

    /// The histogram of bucket `index`, unless that bucket has settled already.
    fn open_histogram(&mut self, index: u64, now: Duration) -> Option<&mut Histogram<u32>> {
        if self.bucket_settled(index, now) && !self.open_histograms.iter().any(|(i, _)| *i == index)
        {
            return None;
        }
        let position = match self.open_histograms.iter().position(|(i, _)| *i >= index) {
            Some(p) if self.open_histograms[p].0 == index => p,
            found => {
                let histogram = self.spare_histograms.pop().unwrap_or_else(|| {
                    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("valid bounds")
                });
                let p = found.unwrap_or(self.open_histograms.len());
                self.open_histograms.insert(p, (index, histogram));
                p
            }
        };
        Some(&mut self.open_histograms[position].1)
    }

    fn bucket_settled(&self, index: u64, now: Duration) -> bool {
        let end = Duration::from_nanos((index + 1) * BUCKET_NS);
        now > end + self.settle
    }

    /// Turns the histograms of settled buckets into their p99.
    fn settle_histograms(&mut self, now: Duration) {
        while let Some((index, _)) = self.open_histograms.front() {
            if !self.bucket_settled(*index, now) {
                break;
            }
            let (index, histogram) = self.open_histograms.pop_front().expect("front exists");
            self.close_histogram(index, histogram);
        }
    }

    fn close_histogram(&mut self, index: u64, mut histogram: Histogram<u32>) {
        if let Some(bucket) = self
            .buckets
            .get_mut((index.saturating_sub(self.first_bucket)) as usize)
            && !histogram.is_empty()
        {
            bucket.p99_us = Some(histogram.value_at_quantile(0.99).min(u64::from(u32::MAX)) as u32);
        }
        histogram.reset();
        self.spare_histograms.push(histogram);
    }

    /// Counts of requests scheduled in buckets `from` (since time zero) onwards.
    pub(crate) fn window(&self, from: u64) -> WindowStats {
        let mut stats = WindowStats::default();
        let skip = from.saturating_sub(self.first_bucket) as usize;
        let mut by_version = vec![0u64; self.versions.len()];
        for bucket in self.buckets.iter().skip(skip) {
            stats.ok += u64::from(bucket.ok);
            stats.failed += bucket.failed_total();
            for (id, n) in &bucket.by_version {
                by_version[usize::from(*id)] += u64::from(*n);
            }
        }
        stats.by_version = self
            .versions
            .iter()
            .zip(by_version)
            .filter(|(_, n)| *n > 0)
            .map(|(v, n)| (v.clone(), n))
            .collect();
        stats
    }

    /// Every version's answers scheduled in slots `from..to` (see [`crate::measure`]).
    pub(crate) fn versions_between(&self, from: u64, to: u64) -> BTreeMap<String, VersionWindow> {
        self.version_slots.between(from, to)
    }

    /// The final report; `start` and `end` bound the scheduled times.
    pub(crate) fn into_report(mut self, start: Duration, end: Duration) -> Report {
        while let Some((index, histogram)) = self.open_histograms.pop_front() {
            self.close_histogram(index, histogram);
        }
        let by_version = self.by_version();
        let failed = self.failed();
        let outages = self.outages.finish();
        let name = |id: u16| self.versions[usize::from(id)].clone();
        let kinds = |counts: &[u32; FailureKind::COUNT]| -> BTreeMap<String, u64> {
            FailureKind::ALL
                .iter()
                .zip(counts)
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| (k.as_str().to_string(), u64::from(*n)))
                .collect()
        };
        // Buckets up to the end of scheduling, even the empty ones, so the chart's time axis is true.
        let last_bucket =
            bucket_index(end.saturating_sub(Duration::from_nanos(1))).max(self.first_bucket);
        let count = (last_bucket - self.first_bucket + 1) as usize;
        let timeline = (0..count.max(self.buckets.len()))
            .map(|i| {
                let t_s = ((self.first_bucket + i as u64) * BUCKET_NS) as f64 / 1e9;
                match self.buckets.get(i) {
                    None => TimelineBucket {
                        t_s,
                        ..TimelineBucket::default()
                    },
                    Some(b) => TimelineBucket {
                        t_s,
                        ok: u64::from(b.ok),
                        failed: b.failed_total(),
                        by_version: b
                            .by_version
                            .iter()
                            .map(|(id, n)| (name(*id), u64::from(*n)))
                            .collect(),
                        failed_by_kind: kinds(&b.failed),
                        p99_ms: b.p99_us.map(|us| f64::from(us) / 1000.0),
                    },
                }
            })
            .collect();
        let ms = |us: u64| us as f64 / 1000.0;
        let latency = if self.latency.is_empty() {
            Latency::default()
        } else {
            Latency {
                p50: ms(self.latency.value_at_quantile(0.50)),
                p90: ms(self.latency.value_at_quantile(0.90)),
                p99: ms(self.latency.value_at_quantile(0.99)),
                max: ms(self.latency.max()),
                count: self.latency.len(),
            }
        };
        let failed_by_kind = FailureKind::ALL
            .iter()
            .map(|k| (k.as_str().to_string(), self.failed[k.index()]))
            .collect();
        Report {
            total: self.ok + failed,
            ok: self.ok,
            failed,
            failed_by_kind,
            by_version,
            failed_by_version: std::mem::take(&mut self.failed_by_version),
            longest_outage_s: outages.longest_s,
            outages: outages.listed,
            outages_omitted: outages.omitted,
            latency_ms: latency,
            start_s: start.as_secs_f64(),
            duration_s: end.saturating_sub(start).as_secs_f64(),
            bucket_s: BUCKET.as_secs_f64(),
            timeline,
            ..Report::default()
        }
    }
}

pub(crate) fn bucket_index(since_zero: Duration) -> u64 {
    (since_zero.as_nanos() / u128::from(BUCKET_NS)) as u64
}

/// The first bucket boundary at or after `since_zero`.
pub(crate) fn bucket_index_ceil(since_zero: Duration) -> u64 {
    since_zero.as_nanos().div_ceil(u128::from(BUCKET_NS)) as u64
}

/// Finds outages in scheduled order although requests complete out of order: outcomes wait in a
/// small reorder buffer (bounded by what is in flight) until every earlier request is known.
struct OutageTracker {
    interval: Duration,
    next_seq: u64,
    pending: VecDeque<Option<(Duration, Option<FailureKind>)>>,
    current: Option<OpenOutage>,
    listed: Vec<Outage>,
    omitted: u64,
    longest_s: f64,
}

struct OpenOutage {
    start: Duration,
    last_failure: Duration,
    failed: [u64; FailureKind::COUNT],
}

struct Outages {
    listed: Vec<Outage>,
    omitted: u64,
    longest_s: f64,
}

impl OutageTracker {
    fn new(interval: Duration) -> Self {
        OutageTracker {
            interval,
            next_seq: 0,
            pending: VecDeque::new(),
            current: None,
            listed: Vec::new(),
            omitted: 0,
            longest_s: 0.0,
        }
    }

    fn record(&mut self, seq: u64, scheduled: Duration, failure: Option<FailureKind>) {
        let Some(offset) = seq.checked_sub(self.next_seq) else {
            return; // already passed (cannot happen: each seq completes once)
        };
        let offset = offset as usize;
        if self.pending.len() <= offset {
            self.pending.resize(offset + 1, None);
        }
        self.pending[offset] = Some((scheduled, failure));
        while let Some(Some(_)) = self.pending.front() {
            let (scheduled, failure) = self.pending.pop_front().flatten().expect("front is some");
            self.next_seq += 1;
            self.advance(scheduled, failure);
        }
    }

    fn advance(&mut self, scheduled: Duration, failure: Option<FailureKind>) {
        match (failure, self.current.as_mut()) {
            (Some(kind), Some(open)) => {
                open.last_failure = scheduled;
                open.failed[kind.index()] += 1;
            }
            (Some(kind), None) => {
                let mut failed = [0; FailureKind::COUNT];
                failed[kind.index()] = 1;
                self.current = Some(OpenOutage {
                    start: scheduled,
                    last_failure: scheduled,
                    failed,
                });
            }
            (None, Some(_)) => {
                let open = self.current.take().expect("matched some");
                self.close(open, scheduled);
            }
            (None, None) => {}
        }
    }

    fn close(&mut self, open: OpenOutage, end: Duration) {
        let duration_s = end.saturating_sub(open.start).as_secs_f64();
        self.longest_s = self.longest_s.max(duration_s);
        if self.listed.len() >= MAX_OUTAGES {
            self.omitted += 1;
            return;
        }
        self.listed.push(Outage {
            start_s: open.start.as_secs_f64(),
            end_s: end.as_secs_f64(),
            duration_s,
            failed: open.failed.iter().sum(),
            failed_by_kind: FailureKind::ALL
                .iter()
                .filter(|k| open.failed[k.index()] > 0)
                .map(|k| (k.as_str().to_string(), open.failed[k.index()]))
                .collect(),
        });
    }

    fn finish(mut self) -> Outages {
        // Normally empty; a request that never reported is skipped rather than blocking the rest.
        while let Some(entry) = self.pending.pop_front() {
            if let Some((scheduled, failure)) = entry {
                self.advance(scheduled, failure);
            }
        }
        if let Some(open) = self.current.take() {
            let end = open.last_failure + self.interval;
            self.close(open, end);
        }
        Outages {
            listed: self.listed,
            omitted: self.omitted,
            longest_s: self.longest_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn ok(seq: u64, at_ms: u64, version: &str) -> Completion {
        Completion {
            seq,
            scheduled: MS(at_ms),
            outcome: RequestOutcome::Ok {
                version: Some(version.into()),
            },
            latency: MS(1),
        }
    }

    fn fail(seq: u64, at_ms: u64, kind: FailureKind) -> Completion {
        Completion {
            seq,
            scheduled: MS(at_ms),
            outcome: RequestOutcome::failed(kind),
            latency: MS(1),
        }
    }

    #[test]
    fn outages_follow_scheduled_order_even_when_answers_arrive_out_of_order() {
        let mut agg = Aggregator::new(MS(0), MS(10), MS(2000));
        // seq 0 ok, 1..=3 fail, 4 ok, 5 fails (run ends in it); recorded out of order.
        let completions = vec![
            fail(2, 20, FailureKind::Refused),
            ok(0, 0, "v1"),
            fail(3, 30, FailureKind::Reset),
            ok(4, 40, "v1"),
            fail(1, 10, FailureKind::Refused),
            fail(5, 50, FailureKind::Timeout),
        ];
        for c in completions {
            agg.record(c, MS(60));
        }
        let report = agg.into_report(MS(0), MS(60));
        assert_eq!(report.outages.len(), 2, "{:?}", report.outages);
        let first = &report.outages[0];
        assert!((first.start_s - 0.010).abs() < 1e-9);
        assert!((first.end_s - 0.040).abs() < 1e-9);
        assert_eq!(first.failed, 3);
        assert_eq!(first.failed_by_kind["refused"], 2);
        assert_eq!(first.failed_by_kind["reset"], 1);
        let last = &report.outages[1];
        assert!((last.start_s - 0.050).abs() < 1e-9);
        assert!((last.duration_s - 0.010).abs() < 1e-9, "one interval");
        assert!((report.longest_outage_s - 0.030).abs() < 1e-9);
        assert_eq!((report.total, report.ok, report.failed), (6, 2, 4));
    }

    #[test]
    fn window_counts_whole_buckets_from_the_boundary_on() {
        let mut agg = Aggregator::new(MS(0), MS(50), MS(2000));
        agg.record(ok(0, 0, "v1"), MS(10));
        agg.record(ok(1, 50, "v1"), MS(60));
        agg.record(ok(2, 100, "v2"), MS(110));
        agg.record(fail(3, 150, FailureKind::Http5xx), MS(160));
        // From 40 ms: the boundary is 100 ms, so only the last two count.
        let stats = agg.window(bucket_index_ceil(MS(40)));
        assert_eq!(stats.ok, 1);
        assert_eq!(stats.failed, 1);
        assert_eq!(stats.by_version, BTreeMap::from([("v2".to_string(), 1)]));
        let all = agg.window(0);
        assert_eq!(all.ok, 3);
        assert_eq!(all.by_version["v1"], 2);
    }

    #[test]
    fn timeline_has_per_bucket_counts_and_p99() {
        let mut agg = Aggregator::new(MS(0), MS(10), MS(100));
        for seq in 0..20u64 {
            let mut c = ok(seq, seq * 10, if seq < 10 { "v1" } else { "v2" });
            c.latency = MS(5 + seq);
            agg.record(c, MS(seq * 10 + 5));
        }
        let report = agg.into_report(MS(0), MS(200));
        assert_eq!(report.timeline.len(), 2);
        assert_eq!(report.timeline[0].by_version["v1"], 10);
        assert_eq!(report.timeline[1].by_version["v2"], 10);
        let p99 = report.timeline[1].p99_ms.expect("answered requests");
        assert!((23.5..=24.5).contains(&p99), "{p99}");
        assert_eq!(report.by_version.values().sum::<u64>(), report.ok);
    }

    #[test]
    fn late_answers_after_a_bucket_settled_still_count() {
        let mut agg = Aggregator::new(MS(0), MS(10), MS(100));
        agg.record(ok(0, 0, "v1"), MS(5));
        // Far later: bucket 0 settles (its p99 is fixed) but counts still land.
        agg.record(ok(1, 10, "v1"), MS(5000));
        let report = agg.into_report(MS(0), MS(20));
        assert_eq!(report.timeline[0].ok, 2);
        let p99 = report.timeline[0].p99_ms.expect("bucket 0 had an answer");
        assert!((0.99..=1.02).contains(&p99), "{p99}");
    }
}

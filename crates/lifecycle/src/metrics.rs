//! Prometheus metrics: requests by status (and version), requests in flight, request duration and
//! the lifecycle state. Every metric carries the constant label `version`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::State;

/// Name of the request counter as exposed (prometheus-client appends `_total`).
pub const REQUESTS_TOTAL: &str = "http_requests_total";
/// Name of the in-flight gauge.
pub const REQUESTS_IN_FLIGHT: &str = "http_requests_in_flight";
/// Name of the duration histogram.
pub const REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
/// Name of the state gauge (1 for the current state, 0 for the others).
pub const LIFECYCLE_STATE: &str = "lifecycle_state";

/// Content type of the text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: StateLabel,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values are lower case on the wire
enum StateLabel {
    starting,
    ready,
    draining,
    stopped,
}

impl From<State> for StateLabel {
    fn from(state: State) -> Self {
        match state {
            State::Starting => Self::starting,
            State::Ready => Self::ready,
            State::Draining => Self::draining,
            State::Stopped => Self::stopped,
        }
    }
}

/// Status codes that get a cached counter handle, so the hot path skips the family's lock.
const CACHED_STATUS_RANGE: std::ops::Range<u16> = 100..600;

/// The lifecycle's metrics and the registry they live in (apps may register their own).
pub struct Metrics {
    registry: RwLock<Registry>,
    requests: Family<StatusLabels, Counter>,
    counter_by_status: Box<[OnceLock<Counter>]>,
    in_flight: Gauge,
    duration: DurationHistogram,
    state: Family<StateLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("in_flight", &self.in_flight.get())
            .finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new(version: &str) -> Self {
        let mut registry = Registry::with_labels(
            [(
                std::borrow::Cow::Borrowed("version"),
                std::borrow::Cow::Owned(version.to_owned()),
            )]
            .into_iter(),
        );
        let requests = Family::<StatusLabels, Counter>::default();
        let in_flight = Gauge::default();
        let duration = DurationHistogram::new();
        let state = Family::<StateLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by status",
            requests.clone(),
        );
        registry.register(
            REQUESTS_IN_FLIGHT,
            "HTTP requests being served now",
            in_flight.clone(),
        );
        registry.register(
            REQUEST_DURATION_SECONDS,
            "Time to answer HTTP requests",
            duration.clone(),
        );
        registry.register(
            LIFECYCLE_STATE,
            "1 for the lifecycle's current state (starting, ready, draining, stopped)",
            state.clone(),
        );
        let metrics = Self {
            registry: RwLock::new(registry),
            requests,
            counter_by_status: CACHED_STATUS_RANGE.map(|_| OnceLock::new()).collect(),
            in_flight,
            duration,
            state,
        };
        metrics.record_state(State::Starting);
        metrics
    }

    /// Runs `register` with the registry, for an app's own metrics.
    pub fn register(&self, register: impl FnOnce(&mut Registry)) {
        let mut registry = self
            .registry
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        register(&mut registry);
    }

    /// The text exposition (OpenMetrics), as served on the metrics path.
    pub fn encode(&self) -> String {
        let registry = self
            .registry
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }

    /// Requests in flight now (through the lifecycle's request layer).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.get().max(0) as u64
    }

    pub(crate) fn record_state(&self, state: State) {
        for each in [
            State::Starting,
            State::Ready,
            State::Draining,
            State::Stopped,
        ] {
            let value = i64::from(each == state);
            self.state
                .get_or_create(&StateLabels { state: each.into() })
                .set(value);
        }
    }

    fn count_status(&self, status: u16) {
        match self
            .counter_by_status
            .get(usize::from(status.wrapping_sub(CACHED_STATUS_RANGE.start)))
        {
            Some(slot) => slot
                .get_or_init(|| self.requests.get_or_create_owned(&StatusLabels { status }))
                .inc(),
            None => self.requests.get_or_create(&StatusLabels { status }).inc(),
        };
    }
}

/// A request being served: counted in flight until dropped (also when the client goes away).
pub(crate) struct InFlight {
    metrics: Arc<Metrics>,
    started: Instant,
}

impl InFlight {
    pub(crate) fn enter(metrics: Arc<Metrics>) -> Self {
        metrics.in_flight.inc();
        Self {
            metrics,
            started: Instant::now(),
        }
    }

    pub(crate) fn answered(&self, status: http::StatusCode) {
        self.metrics.count_status(status.as_u16());
        self.metrics.duration.observe(self.started.elapsed());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

/// Upper bounds of the duration buckets, in seconds: 1 ms to ~65 s (covers `/work?ms=60000`).
const DURATION_BOUNDS: [f64; 17] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192, 16.384, 32.768, 65.536,
];

/// A fixed-bucket histogram of atomics: prometheus-client's takes a lock per observation, which
/// the request path of every answer should not pay.
#[derive(Clone, Debug, Default)]
struct DurationHistogram {
    inner: Arc<DurationBuckets>,
}

/// No total count: the exposition sums the buckets (one atomic operation less per request).
#[derive(Debug, Default)]
struct DurationBuckets {
    /// One count per bound, plus the overflow (`+Inf`) bucket; not cumulative.
    counts: [AtomicU64; DURATION_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    fn new() -> Self {
        Self::default()
    }

    fn observe(&self, duration: std::time::Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = DURATION_BOUNDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BOUNDS.len());
        let inner = &self.inner;
        inner.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        inner.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &self.inner;
        let buckets: Vec<(f64, u64)> = DURATION_BOUNDS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&inner.counts)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        // Count from the buckets so that a scrape racing an observation stays consistent.
        let count = buckets.iter().map(|(_, count)| count).sum();
        let sum = inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_the_metrics_with_the_version_label() {
        let metrics = Arc::new(Metrics::new("v7"));
        {
            let request = InFlight::enter(metrics.clone());
            assert_eq!(metrics.in_flight(), 1);
            request.answered(http::StatusCode::OK);
        }
        InFlight::enter(metrics.clone()).answered(http::StatusCode::from_u16(999).unwrap());
        metrics.record_state(State::Ready);
        let text = metrics.encode();
        assert_eq!(metrics.in_flight(), 0);
        assert!(
            text.contains(r#"http_requests_total{version="v7",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_requests_total{version="v7",status="999"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"lifecycle_state{version="v7",state="ready"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"lifecycle_state{version="v7",state="starting"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_requests_in_flight{version="v7"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_request_duration_seconds_count{version="v7"} 2"#),
            "{text}"
        );
    }
}

#[cfg(test)]
mod histogram_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_are_cumulative_in_the_exposition() {
        let metrics = Metrics::new("h");
        for millis in [0, 3, 3, 100, 70_000] {
            metrics.duration.observe(Duration::from_millis(millis));
        }
        let text = metrics.encode();
        for line in [
            r#"http_request_duration_seconds_bucket{version="h",le="0.001"} 1"#,
            r#"http_request_duration_seconds_bucket{version="h",le="0.004"} 3"#,
            r#"http_request_duration_seconds_bucket{version="h",le="0.128"} 4"#,
            r#"http_request_duration_seconds_bucket{version="h",le="65.536"} 4"#,
            r#"http_request_duration_seconds_bucket{version="h",le="+Inf"} 5"#,
            r#"http_request_duration_seconds_count{version="h"} 5"#,
            r#"http_request_duration_seconds_sum{version="h"} 70.106"#,
        ] {
            assert!(
                text.lines().any(|each| each == line),
                "missing {line}:\n{text}"
            );
        }
    }
}

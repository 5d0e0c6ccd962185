//! Each version's own latency (answered ok, from the scheduled send time): a shadow's copies are
//! compared with the old version's answers, not with a mix of both versions.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::outcome::RequestOutcome;
use crate::report::Latency;

/// Versions given a histogram of their own; a misbehaving version header cannot grow memory.
const MAX_VERSIONS: usize = 16;

#[derive(Default)]
pub(crate) struct VersionLatency {
    histograms: BTreeMap<String, Histogram<u64>>,
}

impl VersionLatency {
    pub(crate) fn record(&mut self, outcome: &RequestOutcome, latency: Duration) {
        let RequestOutcome::Ok {
            version: Some(version),
        } = outcome
        else {
            return;
        };
        if !self.histograms.contains_key(version) {
            if self.histograms.len() >= MAX_VERSIONS {
                return;
            }
            let histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
            self.histograms.insert(version.clone(), histogram);
        }
        if let Some(histogram) = self.histograms.get_mut(version) {
            histogram.saturating_record((latency.as_micros() as u64).max(1));
        }
    }

    pub(crate) fn finish(&mut self) -> BTreeMap<String, Latency> {
        let ms = |us: u64| us as f64 / 1000.0;
        std::mem::take(&mut self.histograms)
            .into_iter()
            .map(|(version, h)| {
                let latency = Latency {
                    p50: ms(h.value_at_quantile(0.50)),
                    p90: ms(h.value_at_quantile(0.90)),
                    p99: ms(h.value_at_quantile(0.99)),
                    max: ms(h.max()),
                    count: h.len(),
                };
                (version, latency)
            })
            .collect()
    }
}

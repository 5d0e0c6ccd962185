//! One metric over one interval: its value, the bound, and the verdict. Missing data is
//! inconclusive, never a pass.

use std::collections::BTreeMap;
use std::time::Duration;

use zdd_probe::VersionWindow;

use super::prometheus;
use crate::events::Verdict;
use crate::model::MirrorStats;
use crate::spec::analysis::{Bound, LatencyLimit, MetricKind};

pub struct Measurement {
    pub verdict: Verdict,
    pub value: Option<f64>,
    pub threshold: String,
    pub detail: String,
}

/// What a measurement of one interval can look at.
pub struct Interval<'a> {
    /// The probe's answers per version in the interval; `None` without probe traffic.
    pub versions: Option<&'a BTreeMap<String, VersionWindow>>,
    pub new: &'a str,
    pub old: &'a str,
    pub min_requests: u64,
    /// The copies the mirror route sent to the new version in the interval, or why none count.
    pub mirror: &'a Result<MirrorStats, String>,
    /// The main route's URL, for `{{url}}`.
    pub url: &'a str,
}

impl Interval<'_> {
    /// The answers of `version`, when there are enough of them.
    fn answers(&self, version: &str) -> Result<VersionWindow, String> {
        let Some(versions) = self.versions else {
            return Err("no probe traffic (the main route is not reachable from here)".into());
        };
        let window = versions.get(version).cloned().unwrap_or_default();
        if window.requests() < self.min_requests {
            return Err(format!(
                "{} answers from {version}, fewer than minRequests {}",
                window.requests(),
                self.min_requests
            ));
        }
        Ok(window)
    }

    /// `{{version}}` and `{{url}}` replaced.
    pub fn substitute(&self, text: &str) -> String {
        text.replace("{{version}}", self.new)
            .replace("{{url}}", self.url)
    }
}

fn inconclusive(threshold: String, detail: String) -> Measurement {
    Measurement {
        verdict: Verdict::Inconclusive,
        value: None,
        threshold,
        detail,
    }
}

fn judged(pass: bool, value: f64, threshold: String, detail: String) -> Measurement {
    Measurement {
        verdict: if pass { Verdict::Pass } else { Verdict::Fail },
        value: Some(value),
        threshold,
        detail,
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

pub async fn measure(kind: &MetricKind, interval: &Interval<'_>) -> Measurement {
    match kind {
        MetricKind::SuccessRate { min } => {
            let threshold = format!(">= {}%", min * 100.0);
            match interval.answers(interval.new) {
                Err(why) => inconclusive(threshold, why),
                Ok(window) => {
                    let rate = window.success_rate().unwrap_or(0.0);
                    let detail = format!(
                        "{:.2}% of {} answers from {} succeeded ({} failed)",
                        rate * 100.0,
                        window.requests(),
                        interval.new,
                        window.failed
                    );
                    judged(rate >= *min, rate, threshold, detail)
                }
            }
        }
        MetricKind::Latency { quantile, limit } => latency(*quantile, *limit, interval),
        MetricKind::MirrorSuccessRate { min } => mirror(*min, interval),
        MetricKind::Prometheus {
            address,
            query,
            bound,
        } => {
            let threshold = match bound {
                Bound::Max(max) => format!("<= {max}"),
                Bound::Min(min) => format!(">= {min}"),
            };
            let query = interval.substitute(query);
            match prometheus::query(address, &query, Duration::from_secs(5)).await {
                Err(why) => inconclusive(threshold, why),
                Ok(value) => {
                    let pass = match bound {
                        Bound::Max(max) => value <= *max,
                        Bound::Min(min) => value >= *min,
                    };
                    judged(
                        pass,
                        value,
                        threshold,
                        format!("the query's value is {value}"),
                    )
                }
            }
        }
        MetricKind::Command { argv, timeout } => command(argv, *timeout, interval).await,
    }
}

fn latency(quantile: f64, limit: LatencyLimit, interval: &Interval<'_>) -> Measurement {
    let q = format!("p{}", quantile * 100.0);
    let threshold = match limit {
        LatencyLimit::Max(max) => format!("{q} <= {}ms", ms(max)),
        LatencyLimit::MaxRatioToOld(ratio) => format!("{q} <= {ratio} x {}'s", interval.old),
    };
    let new = match interval.answers(interval.new) {
        Err(why) => return inconclusive(threshold, why),
        Ok(window) => window.latency(quantile).unwrap_or_default(),
    };
    match limit {
        LatencyLimit::Max(max) => judged(
            new <= max,
            ms(new),
            threshold,
            format!("{q} of {} is {:.1}ms", interval.new, ms(new)),
        ),
        LatencyLimit::MaxRatioToOld(ratio) => {
            let old = match interval.answers(interval.old) {
                Err(why) => return inconclusive(threshold, why),
                Ok(window) => window.latency(quantile).unwrap_or_default(),
            };
            // Both at the histogram's floor: equal.
            let measured = ms(new).max(0.001) / ms(old).max(0.001);
            judged(
                measured <= ratio,
                measured,
                threshold,
                format!(
                    "{q} of {} is {:.1}ms, {:.2} x {}'s {:.1}ms",
                    interval.new,
                    ms(new),
                    measured,
                    interval.old,
                    ms(old)
                ),
            )
        }
    }
}

/// The share of the interval's copies answered 1xx to 3xx. A copy the router dropped (its queue
/// was full: the shadow did not keep up) counts as failed; one skipped for its size counts not.
fn mirror(min: f64, interval: &Interval<'_>) -> Measurement {
    let threshold = format!(">= {}%", min * 100.0);
    let copies = match interval.mirror {
        Err(why) => return inconclusive(threshold, why.clone()),
        Ok(copies) => copies,
    };
    let judged_copies = copies.ok + copies.failed() + copies.dropped;
    if judged_copies < interval.min_requests {
        return inconclusive(
            threshold,
            format!(
                "{judged_copies} mirrored copies to {} answered or dropped, fewer than \
                 minRequests {}",
                copies.version, interval.min_requests
            ),
        );
    }
    let rate = copies.ok as f64 / judged_copies as f64;
    let detail = format!(
        "{:.2}% of {judged_copies} mirrored copies to {} succeeded ({} 5xx, {} 4xx, {} \
         unanswered, {} dropped)",
        rate * 100.0,
        copies.version,
        copies.http_5xx,
        copies.http_4xx,
        copies.failed_by_kind.values().sum::<u64>(),
        copies.dropped
    );
    judged(rate >= min, rate, threshold, detail)
}

async fn command(argv: &[String], timeout: Duration, interval: &Interval<'_>) -> Measurement {
    let threshold = "exit code 0".to_string();
    let argv: Vec<String> = argv.iter().map(|arg| interval.substitute(arg)).collect();
    let shown = argv.join(" ");
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(err) => return inconclusive(threshold, format!("`{shown}` did not start: {err}")),
    };
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => inconclusive(
            threshold,
            format!(
                "`{shown}` did not finish within {} (stopped)",
                humantime::format_duration(timeout)
            ),
        ),
        Ok(Err(err)) => inconclusive(threshold, format!("`{shown}`: {err}")),
        Ok(Ok(output)) => {
            let code = output.status.code();
            let said = String::from_utf8_lossy(&output.stderr);
            let said = said.lines().last().unwrap_or_default().trim();
            let detail = match (code, said.is_empty()) {
                (Some(code), true) => format!("`{shown}` exited with {code}"),
                (Some(code), false) => format!("`{shown}` exited with {code}: {said}"),
                (None, _) => format!("`{shown}` was killed by a signal"),
            };
            judged(
                code == Some(0),
                f64::from(code.unwrap_or(-1)),
                threshold,
                detail,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(ok: u64, failed: u64, latency_ms: u64) -> VersionWindow {
        let mut window = VersionWindow::default();
        for i in 0..ok + failed {
            window.record(i < ok, Duration::from_millis(latency_ms));
        }
        window
    }

    const NO_MIRROR: &Result<MirrorStats, String> = &Err(String::new());

    fn interval(versions: &BTreeMap<String, VersionWindow>) -> Interval<'_> {
        Interval {
            versions: Some(versions),
            mirror: NO_MIRROR,
            new: "v2",
            old: "v1",
            min_requests: 20,
            url: "http://127.0.0.1:1",
        }
    }

    fn verdict(kind: &MetricKind, versions: &[(&str, VersionWindow)]) -> (Verdict, Option<f64>) {
        let versions: BTreeMap<String, VersionWindow> = versions
            .iter()
            .map(|(name, w)| (name.to_string(), w.clone()))
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let m = runtime.block_on(measure(kind, &interval(&versions)));
        (m.verdict, m.value)
    }

    #[test]
    fn success_rate_passes_fails_and_is_inconclusive_below_min_requests() {
        let kind = MetricKind::SuccessRate { min: 0.99 };
        assert_eq!(
            verdict(&kind, &[("v2", window(100, 0, 1))]),
            (Verdict::Pass, Some(1.0))
        );
        assert_eq!(
            verdict(&kind, &[("v2", window(95, 5, 1))]),
            (Verdict::Fail, Some(0.95))
        );
        // Plenty of the old version's answers do not make up for too few of the new one's.
        assert_eq!(
            verdict(
                &kind,
                &[("v1", window(500, 0, 1)), ("v2", window(19, 0, 1))]
            ),
            (Verdict::Inconclusive, None)
        );
    }

    #[test]
    fn latency_against_a_bound_and_against_the_old_version() {
        let max = MetricKind::Latency {
            quantile: 0.99,
            limit: LatencyLimit::Max(Duration::from_millis(50)),
        };
        assert_eq!(verdict(&max, &[("v2", window(50, 0, 20))]).0, Verdict::Pass);
        assert_eq!(verdict(&max, &[("v2", window(50, 0, 80))]).0, Verdict::Fail);
        let ratio = MetricKind::Latency {
            quantile: 0.99,
            limit: LatencyLimit::MaxRatioToOld(1.5),
        };
        let (v, value) = verdict(
            &ratio,
            &[("v1", window(50, 0, 10)), ("v2", window(50, 0, 30))],
        );
        assert_eq!(v, Verdict::Fail);
        assert!((value.unwrap() - 3.0).abs() < 0.1, "{value:?}");
        let like = [("v1", window(50, 0, 10)), ("v2", window(50, 0, 12))];
        assert_eq!(verdict(&ratio, &like).0, Verdict::Pass);
        // No old answers to compare with: inconclusive.
        assert_eq!(
            verdict(&ratio, &[("v2", window(50, 0, 12))]).0,
            Verdict::Inconclusive
        );
    }

    #[test]
    fn mirror_success_rate_counts_dropped_copies_as_failed() {
        let kind = MetricKind::MirrorSuccessRate { min: 0.99 };
        let judge = |mirror: Result<MirrorStats, String>| {
            let versions = BTreeMap::new();
            let interval = Interval {
                mirror: &mirror,
                ..interval(&versions)
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let m = runtime.block_on(measure(&kind, &interval));
            (m.verdict, m.value)
        };
        let copies = |ok, http_5xx, dropped| MirrorStats {
            version: "v2".into(),
            sent: ok + http_5xx,
            ok,
            http_5xx,
            dropped,
            ..MirrorStats::default()
        };
        assert_eq!(judge(Ok(copies(100, 0, 0))), (Verdict::Pass, Some(1.0)));
        assert_eq!(judge(Ok(copies(90, 10, 0))), (Verdict::Fail, Some(0.9)));
        assert_eq!(judge(Ok(copies(90, 0, 10))), (Verdict::Fail, Some(0.9)));
        // Fewer than minRequests (20), or no mirror route: inconclusive.
        assert_eq!(judge(Ok(copies(19, 0, 0))).0, Verdict::Inconclusive);
        assert_eq!(
            judge(Err("no mirror route".into())).0,
            Verdict::Inconclusive
        );
    }

    #[test]
    fn mirror_counters_since_an_earlier_reading() {
        let before = MirrorStats {
            version: "v2".into(),
            sent: 100,
            ok: 90,
            http_5xx: 10,
            ..MirrorStats::default()
        };
        let now = MirrorStats {
            sent: 250,
            ok: 230,
            http_5xx: 20,
            ..before.clone()
        };
        let delta = now.since(&before);
        assert_eq!((delta.sent, delta.ok, delta.failed()), (150, 140, 10));
    }
}

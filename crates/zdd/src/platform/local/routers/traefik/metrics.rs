//! Mirror counters with Traefik: Traefik discards the mirrors' answers, but its Prometheus
//! metrics (on the loopback API entry point) count each service's requests by status code and
//! time them in a histogram. A mirror's service is its own (see `mirrors.rs`), so its series are
//! the copies'.
//!
//! What Traefik does not tell: a copy that got no answer (refused, reset, timed out) is counted
//! with the status Traefik gave it (502, 504), so it shows under `http_5xx`, not by failure kind;
//! it has no queue, so nothing is dropped; and a request over `maxBodySize` is simply not copied,
//! uncounted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::TraefikError;
use super::mirrors::MirrorService;
use crate::model::MirrorStats;

/// Latency buckets (seconds) for `--metrics.prometheus.buckets`: fine enough for a p50 and a p99
/// of loopback answers.
pub(super) const BUCKETS: &str = "0.0005,0.001,0.002,0.005,0.01,0.02,0.05,0.1,0.2,0.5,1,2,5,10";

const REQUESTS: &str = "traefik_service_requests_total";
const DURATION_BUCKET: &str = "traefik_service_request_duration_seconds_bucket";

/// Traefik's metrics text, from `http://{api}/metrics`.
pub(super) async fn scrape(api: SocketAddr) -> Result<String, TraefikError> {
    let fail = |err: &dyn std::fmt::Display| TraefikError::Other(format!("metrics: {err}"));
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(api)
            .await
            .map_err(|e| fail(&e))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| fail(&e))?;
        tokio::spawn(connection);
        let request = http::Request::get("/metrics")
            .header(http::header::HOST, api.to_string())
            .body(Empty::new())
            .map_err(|e| fail(&e))?;
        let response = sender.send_request(request).await.map_err(|e| fail(&e))?;
        if !response.status().is_success() {
            return Err(fail(&format!("status {}", response.status())));
        }
        let body = response.into_body().collect().await.map_err(|e| fail(&e))?;
        Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| fail(&"no answer within 5s"))?
}

/// One sample: `name{label="value",...} number`.
struct Sample<'a> {
    name: &'a str,
    labels: BTreeMap<&'a str, &'a str>,
    value: f64,
}

fn parse_line(line: &str) -> Option<Sample<'_>> {
    if line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (series, ""),
    };
    // Traefik's label values (service names, codes, bounds) hold no quote or comma.
    let labels = labels
        .split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key, value.trim_matches('"')))
        })
        .collect();
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The counters of `mirror` in `metrics` (zero before its first copy).
pub(super) fn mirror_stats(metrics: &str, mirror: &MirrorService) -> MirrorStats {
    let service = format!("{}@file", mirror.service);
    let mut stats = MirrorStats {
        version: mirror.name.clone(),
        ..MirrorStats::default()
    };
    // Cumulative counts per upper bound, summed over status codes.
    let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for sample in metrics.lines().filter_map(parse_line) {
        if sample.labels.get("service") != Some(&service.as_str()) {
            continue;
        }
        let count = sample.value as u64;
        if sample.name == REQUESTS {
            let code: u16 = sample
                .labels
                .get("code")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            stats.sent += count;
            match code {
                500.. => stats.http_5xx += count,
                400..=499 => stats.http_4xx += count,
                _ => stats.ok += count,
            }
        } else if sample.name == DURATION_BUCKET {
            let bound = match sample.labels.get("le") {
                Some(&"+Inf") => f64::INFINITY,
                Some(bound) => bound.parse().unwrap_or(f64::INFINITY),
                None => continue,
            };
            // Ordered by bound (the keys are the bounds' bits: positive floats sort as integers).
            buckets.entry(bound.to_bits()).or_insert((bound, 0.0)).1 += sample.value;
        }
    }
    let buckets: Vec<(f64, f64)> = buckets.into_values().collect();
    stats.p50_ms = quantile(&buckets, 0.5) * 1000.0;
    stats.p99_ms = quantile(&buckets, 0.99) * 1000.0;
    stats
}

/// The `q` quantile of a cumulative histogram (`(upper bound, count)` in order), interpolated
/// linearly inside its bucket as Prometheus' `histogram_quantile` does; 0 when it is empty.
fn quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let Some(&(_, total)) = buckets.last() else {
        return 0.0;
    };
    if total <= 0.0 {
        return 0.0;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                // Above the highest bound: that bound is all that is known.
                return lower;
            }
            let share = if count > below {
                (rank - below) / (count - below)
            } else {
                1.0
            };
            return lower + (bound - lower) * share;
        }
        (lower, below) = (bound, count);
    }
    lower
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = r#"# HELP traefik_service_requests_total How many HTTP requests processed on a service, partitioned by status code, protocol, and method.
# TYPE traefik_service_requests_total counter
traefik_service_requests_total{code="200",method="GET",protocol="http",service="mirror2-v2@file"} 6
traefik_service_requests_total{code="404",method="POST",protocol="http",service="mirror2-v2@file"} 1
traefik_service_requests_total{code="502",method="GET",protocol="http",service="mirror2-v2@file"} 3
traefik_service_requests_total{code="200",method="GET",protocol="http",service="web-0@file"} 100
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="mirror2-v2@file",le="0.001"} 2
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="mirror2-v2@file",le="0.002"} 6
traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",service="mirror2-v2@file",le="+Inf"} 6
traefik_service_request_duration_seconds_bucket{code="502",method="GET",protocol="http",service="mirror2-v2@file",le="0.001"} 0
traefik_service_request_duration_seconds_bucket{code="502",method="GET",protocol="http",service="mirror2-v2@file",le="0.002"} 0
traefik_service_request_duration_seconds_bucket{code="502",method="GET",protocol="http",service="mirror2-v2@file",le="+Inf"} 4
"#;

    #[test]
    fn a_mirror_service_counts_by_status_class_and_times_from_the_buckets() {
        let mirror = MirrorService {
            service: "mirror2-v2".into(),
            name: "v2".into(),
        };
        let stats = mirror_stats(METRICS, &mirror);
        assert_eq!(stats.version, "v2");
        assert_eq!(
            (stats.sent, stats.ok, stats.http_4xx, stats.http_5xx),
            (10, 6, 1, 3)
        );
        // 10 timed: 2 under 1 ms, 4 more under 2 ms, 4 above the last bound.
        assert!((stats.p50_ms - 1.75).abs() < 1e-9, "{stats:?}");
        assert!((stats.p99_ms - 2.0).abs() < 1e-9, "{stats:?}");
        let unknown = MirrorService {
            service: "mirror9-v2".into(),
            name: "v2".into(),
        };
        assert_eq!(mirror_stats(METRICS, &unknown).sent, 0);
        assert_eq!(mirror_stats(METRICS, &unknown).p99_ms, 0.0);
    }
}

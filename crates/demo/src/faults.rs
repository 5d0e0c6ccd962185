//! Fault injection on `GET /`: a share of answers turned into 500s and added latency, from the
//! environment (`ERROR_RATE`, `EXTRA_LATENCY`) and changeable at runtime (`/admin/faults`), so a
//! deliberately bad version can be rolled out and caught by analysis.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

/// Error rates are kept in parts per million: exact enough, and atomic.
const PPM: u64 = 1_000_000;
/// Longest `EXTRA_LATENCY` accepted (the same bound as `/work`).
pub const MAX_EXTRA_LATENCY: Duration = Duration::from_millis(crate::MAX_WORK_MS);

/// The faults in force, shared by every request.
#[derive(Debug, Default)]
pub struct Faults {
    error_ppm: AtomicU32,
    latency_us: AtomicU64,
    /// `GET /` requests seen since the rate was last set: the failing ones are chosen from it.
    seen: AtomicU64,
}

/// What `GET /` must do before answering.
#[derive(Debug, PartialEq, Eq)]
pub struct Injected {
    pub delay: Duration,
    pub fail: bool,
}

impl Faults {
    pub fn new(error_rate: f64, extra_latency: Duration) -> Self {
        let faults = Self::default();
        faults.set_error_rate(error_rate);
        faults.set_extra_latency(extra_latency);
        faults
    }

    pub fn error_rate(&self) -> f64 {
        f64::from(self.error_ppm.load(Ordering::Relaxed)) / PPM as f64
    }

    pub fn extra_latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }

    /// Sets the rate (already validated to `0..=1`) and restarts the count, so the next 100
    /// requests at 0.05 hold exactly 5 failures.
    pub fn set_error_rate(&self, rate: f64) {
        let ppm = (rate.clamp(0.0, 1.0) * PPM as f64).round() as u32;
        self.error_ppm.store(ppm, Ordering::Relaxed);
        self.seen.store(0, Ordering::Relaxed);
    }

    pub fn set_extra_latency(&self, latency: Duration) {
        let micros = latency.min(MAX_EXTRA_LATENCY).as_micros() as u64;
        self.latency_us.store(micros, Ordering::Relaxed);
    }

    /// Decides for one request. Deterministic rather than random: request n fails when
    /// `floor(n * rate)` steps up, so failures are spread evenly and any window of 1/rate
    /// requests holds one (0.05: requests 20, 40, 60...).
    pub fn next(&self) -> Injected {
        let ppm = u64::from(self.error_ppm.load(Ordering::Relaxed));
        let fail = ppm > 0 && {
            let n = self.seen.fetch_add(1, Ordering::Relaxed);
            (n + 1) * ppm / PPM > n * ppm / PPM
        };
        Injected {
            delay: self.extra_latency(),
            fail,
        }
    }

    fn view(&self) -> FaultsView {
        FaultsView {
            error_rate: self.error_rate(),
            extra_latency: humantime::format_duration(self.extra_latency()).to_string(),
        }
    }
}

/// `ERROR_RATE` and the `error_rate` toggle: a number from 0 to 1.
pub fn parse_error_rate(name: &str, value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "{name}={value:?} must be a number from 0 to 1 (the share of GET / answered 500, e.g. 0.05)"
        )),
    }
}

/// `EXTRA_LATENCY` and the `extra_latency` toggle: a humantime duration up to a minute.
pub fn parse_extra_latency(name: &str, value: &str) -> Result<Duration, String> {
    let trimmed = value.trim();
    let parsed = if trimmed == "0" {
        Ok(Duration::ZERO)
    } else {
        humantime::parse_duration(trimmed)
    };
    match parsed {
        Ok(latency) if latency <= MAX_EXTRA_LATENCY => Ok(latency),
        _ => Err(format!(
            "{name}={value:?} must be a duration from 0 to 60s (e.g. 50ms, 1s)"
        )),
    }
}

#[derive(Serialize)]
struct FaultsView {
    error_rate: f64,
    extra_latency: String,
}

/// `GET /admin/faults` shows them; `POST /admin/faults?error_rate=0.1&extra_latency=20ms` sets
/// either or both (nothing changes when one is invalid).
pub fn admin_routes(faults: Arc<Faults>) -> Router {
    Router::new()
        .route("/admin/faults", get(show).post(set))
        .with_state(faults)
}

async fn show(State(faults): State<Arc<Faults>>) -> Response {
    Json(faults.view()).into_response()
}

async fn set(
    State(faults): State<Arc<Faults>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(unknown) = query
        .keys()
        .find(|key| !matches!(key.as_str(), "error_rate" | "extra_latency"))
    {
        return crate::bad_request(&format!(
            "unknown parameter {unknown:?}: use error_rate=0..1 and/or extra_latency=DURATION"
        ));
    }
    if query.is_empty() {
        return crate::bad_request(
            "nothing to set: use error_rate=0..1 and/or extra_latency=DURATION",
        );
    }
    let rate = query
        .get("error_rate")
        .map(|value| parse_error_rate("error_rate", value))
        .transpose();
    let latency = query
        .get("extra_latency")
        .map(|value| parse_extra_latency("extra_latency", value))
        .transpose();
    let (rate, latency) = match (rate, latency) {
        (Ok(rate), Ok(latency)) => (rate, latency),
        (Err(message), _) | (_, Err(message)) => return crate::bad_request(&message),
    };
    if let Some(rate) = rate {
        faults.set_error_rate(rate);
    }
    if let Some(latency) = latency {
        faults.set_extra_latency(latency);
    }
    let view = faults.view();
    tracing::info!(
        error_rate = view.error_rate,
        extra_latency = %view.extra_latency,
        "faults set"
    );
    Json(view).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_fails_exactly_its_share_spread_evenly() {
        let faults = Faults::new(0.05, Duration::ZERO);
        let fails: Vec<usize> = (0..200).filter(|_| faults.next().fail).collect();
        assert_eq!(fails.len(), 10, "{fails:?}");
        // Every window of 20 requests holds exactly one.
        assert!(fails.windows(2).all(|w| w[1] - w[0] == 20), "{fails:?}");

        for (rate, per_1000) in [(0.0, 0), (0.001, 1), (0.333, 333), (1.0, 1000)] {
            let faults = Faults::new(rate, Duration::ZERO);
            let failed = (0..1000).filter(|_| faults.next().fail).count();
            assert_eq!(failed, per_1000, "rate {rate}");
        }
    }

    #[test]
    fn values_are_validated_with_their_name() {
        assert_eq!(parse_error_rate("ERROR_RATE", " 0.25 "), Ok(0.25));
        for bad in ["-0.1", "1.5", "5%", "NaN", ""] {
            let error = parse_error_rate("ERROR_RATE", bad).unwrap_err();
            assert!(error.starts_with("ERROR_RATE="), "{error}");
        }
        assert_eq!(
            parse_extra_latency("EXTRA_LATENCY", "50ms"),
            Ok(Duration::from_millis(50))
        );
        assert_eq!(
            parse_extra_latency("EXTRA_LATENCY", "0"),
            Ok(Duration::ZERO)
        );
        for bad in ["50", "soon", "2m"] {
            let error = parse_extra_latency("EXTRA_LATENCY", bad).unwrap_err();
            assert!(error.starts_with("EXTRA_LATENCY="), "{error}");
        }
    }
}

//! The demo's configuration, read from the environment.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use zdd_lifecycle::{ConfigError, LifecycleConfig, parse_duration};

use crate::faults::{parse_error_rate, parse_extra_latency};
use crate::features::parse_names;

/// Everything the demo reads from the environment.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// `BIND` (default `0.0.0.0`) and `PORT` (default 8080; 0 lets the OS pick).
    pub address: SocketAddr,
    /// `APP_VERSION` (default `v1`): in `X-Version`, the `/` body and the metrics' `version`.
    pub version: String,
    /// `STARTUP_DELAY` (default 0): simulated warm-up, unready until it has passed.
    pub startup_delay: Duration,
    /// `ADMIN_TOGGLES=1` enables the probe toggles (`/admin/...`, `/doReady`...).
    pub admin_toggles: bool,
    /// `LOG_FORMAT=json` logs JSON lines; anything else human-readable text.
    pub json_logs: bool,
    /// `DRAIN_DELAY`, `SHUTDOWN_TIMEOUT` and the probe paths, plus the talk's aliases.
    pub lifecycle: LifecycleConfig,
    /// `ERROR_RATE` (default 0): the share of `GET /` answered 500, from 0 to 1.
    pub error_rate: f64,
    /// `EXTRA_LATENCY` (default 0): added to every `GET /`.
    pub extra_latency: Duration,
    /// `FEATURES=name,...` (default none): the feature flags switched on at start.
    pub features: BTreeSet<String>,
    /// `FEATURE_OVERRIDE=1` lets a request change its own features with `X-Features`.
    pub feature_override: bool,
}

/// A variable the demo cannot use.
#[derive(Debug, thiserror::Error)]
pub enum DemoConfigError {
    /// Bad lifecycle variable (`DRAIN_DELAY`, `SHUTDOWN_TIMEOUT`, a path).
    #[error(transparent)]
    Lifecycle(#[from] ConfigError),
    /// Bad `STARTUP_DELAY`.
    #[error("{0}")]
    StartupDelay(ConfigError),
    /// `PORT` is not a port number.
    #[error("PORT={0:?} is not a port number (0-65535)")]
    Port(String),
    /// `BIND` is not an IP address.
    #[error("BIND={0:?} is not an IP address (e.g. 0.0.0.0, 127.0.0.1, ::)")]
    Bind(String),
    /// `APP_VERSION` cannot be sent in a header.
    #[error("APP_VERSION={0:?} must be non-empty visible ASCII (it is sent as a header)")]
    Version(String),
    /// Bad `ERROR_RATE` or `EXTRA_LATENCY` (the message names it).
    #[error("{0}")]
    Fault(String),
    /// A `FEATURES` name that is not one.
    #[error("{0}")]
    Features(String),
}

impl DemoConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, DemoConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, DemoConfigError> {
        let port = match lookup("PORT") {
            Some(value) => value
                .trim()
                .parse::<u16>()
                .map_err(|_| DemoConfigError::Port(value))?,
            None => 8080,
        };
        let ip = match lookup("BIND") {
            Some(value) => value
                .trim()
                .parse::<IpAddr>()
                .map_err(|_| DemoConfigError::Bind(value))?,
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let version = lookup("APP_VERSION").unwrap_or_else(|| "v1".to_owned());
        if version.is_empty() || !version.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(DemoConfigError::Version(version));
        }
        let startup_delay = match lookup("STARTUP_DELAY") {
            Some(value) => {
                parse_duration("STARTUP_DELAY", &value).map_err(DemoConfigError::StartupDelay)?
            }
            None => Duration::ZERO,
        };
        let error_rate = match lookup("ERROR_RATE") {
            Some(value) => {
                parse_error_rate("ERROR_RATE", &value).map_err(DemoConfigError::Fault)?
            }
            None => 0.0,
        };
        let extra_latency = match lookup("EXTRA_LATENCY") {
            Some(value) => {
                parse_extra_latency("EXTRA_LATENCY", &value).map_err(DemoConfigError::Fault)?
            }
            None => Duration::ZERO,
        };
        let features = match lookup("FEATURES") {
            Some(value) => parse_names("FEATURES", &value).map_err(DemoConfigError::Features)?,
            None => BTreeSet::new(),
        };
        let lifecycle = LifecycleConfig::from_lookup(&lookup)?
            .version(version.clone())
            // The names the talk's services used.
            .readiness_alias("/ready")
            .liveness_alias("/health");
        Ok(Self {
            address: SocketAddr::new(ip, port),
            version,
            startup_delay,
            admin_toggles: lookup("ADMIN_TOGGLES").is_some_and(|value| value.trim() == "1"),
            json_logs: lookup("LOG_FORMAT").is_some_and(|value| value.trim() == "json"),
            lifecycle,
            error_rate,
            extra_latency,
            features,
            feature_override: lookup("FEATURE_OVERRIDE").is_some_and(|value| value.trim() == "1"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        }
    }

    #[test]
    fn defaults() {
        let config = DemoConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(config.address, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.version, "v1");
        assert_eq!(config.startup_delay, Duration::ZERO);
        assert!(!config.admin_toggles);
        assert!(!config.json_logs);
        assert_eq!(config.lifecycle.version, "v1");
        assert_eq!(config.lifecycle.drain_delay, Duration::from_secs(5));
        assert_eq!(config.error_rate, 0.0);
        assert_eq!(config.extra_latency, Duration::ZERO);
        assert!(config.features.is_empty() && !config.feature_override);
    }

    #[test]
    fn every_variable_is_read() {
        let config = DemoConfig::from_lookup(lookup(&[
            ("PORT", "9000"),
            ("BIND", "127.0.0.1"),
            ("APP_VERSION", "v2"),
            ("STARTUP_DELAY", "1500ms"),
            ("DRAIN_DELAY", "2s"),
            ("SHUTDOWN_TIMEOUT", "10s"),
            ("ADMIN_TOGGLES", "1"),
            ("LOG_FORMAT", "json"),
            ("ERROR_RATE", "0.05"),
            ("EXTRA_LATENCY", "50ms"),
            ("FEATURES", "new-checkout,dark-mode"),
            ("FEATURE_OVERRIDE", "1"),
        ]))
        .unwrap();
        assert_eq!(config.address, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(config.version, "v2");
        assert_eq!(config.startup_delay, Duration::from_millis(1500));
        assert_eq!(config.lifecycle.drain_delay, Duration::from_secs(2));
        assert_eq!(config.lifecycle.shutdown_timeout, Duration::from_secs(10));
        assert!(config.admin_toggles && config.json_logs);
        assert_eq!(config.error_rate, 0.05);
        assert_eq!(config.extra_latency, Duration::from_millis(50));
        assert_eq!(
            config.features.iter().collect::<Vec<_>>(),
            ["dark-mode", "new-checkout"]
        );
        assert!(config.feature_override);
    }

    #[test]
    fn bad_values_are_named() {
        for (name, value) in [
            ("PORT", "80800"),
            ("BIND", "localhost"),
            ("APP_VERSION", "v 2"),
            ("STARTUP_DELAY", "later"),
            ("DRAIN_DELAY", "5"),
            ("ERROR_RATE", "1.5"),
            ("EXTRA_LATENCY", "fast"),
            ("FEATURES", "ok,not ok"),
        ] {
            let error = DemoConfig::from_lookup(lookup(&[(name, value)])).unwrap_err();
            assert!(error.to_string().contains(name), "{name}: {error}");
        }
    }
}

//! The demo's configuration, read from the environment.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use zdd_lifecycle::{ConfigError, LifecycleConfig, parse_duration};

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
    /// `ERROR_RATE` (0..1, default 0): the share of `GET /` answered 500, spread evenly.
    pub error_rate: f64,
    /// `EXTRA_LATENCY` (default 0): added to every `GET /`.
    pub extra_latency: Duration,
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
    /// `ERROR_RATE` is not a share from 0 to 1.
    #[error("ERROR_RATE={0:?} is not a share of requests from 0 to 1 (0.05 for 5%)")]
    ErrorRate(String),
    /// Bad `EXTRA_LATENCY`.
    #[error("{0}")]
    ExtraLatency(ConfigError),
    /// `APP_VERSION` cannot be sent in a header.
    #[error("APP_VERSION={0:?} must be non-empty visible ASCII (it is sent as a header)")]
    Version(String),
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
            Some(value) => match value.trim().parse::<f64>() {
                Ok(rate) if (0.0..=1.0).contains(&rate) => rate,
                _ => return Err(DemoConfigError::ErrorRate(value)),
            },
            None => 0.0,
        };
        let extra_latency = match lookup("EXTRA_LATENCY") {
            Some(value) => {
                parse_duration("EXTRA_LATENCY", &value).map_err(DemoConfigError::ExtraLatency)?
            }
            None => Duration::ZERO,
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
    }

    #[test]
    fn fault_injection_is_read_and_checked() {
        let config = DemoConfig::from_lookup(lookup(&[
            ("ERROR_RATE", "0.05"),
            ("EXTRA_LATENCY", "150ms"),
        ]))
        .unwrap();
        assert_eq!(config.error_rate, 0.05);
        assert_eq!(config.extra_latency, Duration::from_millis(150));
        let defaults = DemoConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(
            (defaults.error_rate, defaults.extra_latency),
            (0.0, Duration::ZERO)
        );
        for bad in ["1.5", "-0.1", "five"] {
            let err = DemoConfig::from_lookup(lookup(&[("ERROR_RATE", bad)])).unwrap_err();
            assert!(err.to_string().contains("ERROR_RATE"), "{err}");
        }
        assert!(DemoConfig::from_lookup(lookup(&[("EXTRA_LATENCY", "soon")])).is_err());
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
        ]))
        .unwrap();
        assert_eq!(config.address, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(config.version, "v2");
        assert_eq!(config.startup_delay, Duration::from_millis(1500));
        assert_eq!(config.lifecycle.drain_delay, Duration::from_secs(2));
        assert_eq!(config.lifecycle.shutdown_timeout, Duration::from_secs(10));
        assert!(config.admin_toggles && config.json_logs);
    }

    #[test]
    fn bad_values_are_named() {
        for (name, value) in [
            ("PORT", "80800"),
            ("BIND", "localhost"),
            ("APP_VERSION", "v 2"),
            ("STARTUP_DELAY", "later"),
            ("DRAIN_DELAY", "5"),
        ] {
            let error = DemoConfig::from_lookup(lookup(&[(name, value)])).unwrap_err();
            assert!(error.to_string().contains(name), "{name}: {error}");
        }
    }
}

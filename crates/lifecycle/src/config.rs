//! Configuration of the lifecycle: from code (builder methods) or from the environment.

use std::time::Duration;

use crate::error::ConfigError;

/// Environment variable for [`LifecycleConfig::drain_delay`].
pub const ENV_DRAIN_DELAY: &str = "DRAIN_DELAY";
/// Environment variable for [`LifecycleConfig::shutdown_timeout`].
pub const ENV_SHUTDOWN_TIMEOUT: &str = "SHUTDOWN_TIMEOUT";
/// Environment variable for [`LifecycleConfig::liveness_path`].
pub const ENV_LIVENESS_PATH: &str = "LIVENESS_PATH";
/// Environment variable for [`LifecycleConfig::readiness_path`].
pub const ENV_READINESS_PATH: &str = "READINESS_PATH";
/// Environment variable for [`LifecycleConfig::metrics_path`].
pub const ENV_METRICS_PATH: &str = "METRICS_PATH";

/// How the service behaves around start-up and SIGTERM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleConfig {
    /// How long the service keeps serving (and accepting) after SIGTERM with readiness already
    /// failing, so that endpoint removal propagates before the listener closes. Default 5 s.
    pub drain_delay: Duration,
    /// How long, after the drain delay, the service waits for in-flight requests before it cuts
    /// them off. Default 20 s (drain delay + timeout stays under Kubernetes' 30 s grace period).
    pub shutdown_timeout: Duration,
    /// Liveness path: 200 while the process runs. Default `/healthz`.
    pub liveness_path: String,
    /// Readiness path: 200 only in the ready state. Default `/readyz`.
    pub readiness_path: String,
    /// Extra paths answering like liveness (e.g. the talk's `/health`).
    pub liveness_aliases: Vec<String>,
    /// Extra paths answering like readiness (e.g. the talk's `/ready`).
    pub readiness_aliases: Vec<String>,
    /// Prometheus metrics path. Default `/metrics`.
    pub metrics_path: String,
    /// The `version` label on every metric.
    pub version: String,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            drain_delay: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(20),
            liveness_path: "/healthz".to_owned(),
            readiness_path: "/readyz".to_owned(),
            liveness_aliases: Vec::new(),
            readiness_aliases: Vec::new(),
            metrics_path: "/metrics".to_owned(),
            version: "unknown".to_owned(),
        }
    }
}

impl LifecycleConfig {
    /// Defaults overridden by `DRAIN_DELAY`, `SHUTDOWN_TIMEOUT` (humantime: `250ms`, `5s`),
    /// `LIVENESS_PATH`, `READINESS_PATH` and `METRICS_PATH` when they are set.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (testable).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(value) = lookup(ENV_DRAIN_DELAY) {
            config.drain_delay = parse_duration(ENV_DRAIN_DELAY, &value)?;
        }
        if let Some(value) = lookup(ENV_SHUTDOWN_TIMEOUT) {
            config.shutdown_timeout = parse_duration(ENV_SHUTDOWN_TIMEOUT, &value)?;
        }
        if let Some(value) = lookup(ENV_LIVENESS_PATH) {
            config.liveness_path = parse_path(ENV_LIVENESS_PATH, &value)?;
        }
        if let Some(value) = lookup(ENV_READINESS_PATH) {
            config.readiness_path = parse_path(ENV_READINESS_PATH, &value)?;
        }
        if let Some(value) = lookup(ENV_METRICS_PATH) {
            config.metrics_path = parse_path(ENV_METRICS_PATH, &value)?;
        }
        Ok(config)
    }

    /// Sets the drain delay.
    pub fn drain_delay(mut self, delay: Duration) -> Self {
        self.drain_delay = delay;
        self
    }

    /// Sets the shutdown timeout.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Sets the liveness path.
    pub fn liveness_path(mut self, path: impl Into<String>) -> Self {
        self.liveness_path = path.into();
        self
    }

    /// Sets the readiness path.
    pub fn readiness_path(mut self, path: impl Into<String>) -> Self {
        self.readiness_path = path.into();
        self
    }

    /// Adds a path that answers like liveness.
    pub fn liveness_alias(mut self, path: impl Into<String>) -> Self {
        self.liveness_aliases.push(path.into());
        self
    }

    /// Adds a path that answers like readiness.
    pub fn readiness_alias(mut self, path: impl Into<String>) -> Self {
        self.readiness_aliases.push(path.into());
        self
    }

    /// Sets the metrics path.
    pub fn metrics_path(mut self, path: impl Into<String>) -> Self {
        self.metrics_path = path.into();
        self
    }

    /// Sets the `version` label of the metrics.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }
}

/// Parses a humantime duration (`250ms`, `5s`, `1m 30s`); `0` alone means no delay.
pub fn parse_duration(variable: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let trimmed = value.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(trimmed).map_err(|source| ConfigError::InvalidDuration {
        variable,
        value: value.to_owned(),
        source,
    })
}

fn parse_path(variable: &'static str, value: &str) -> Result<String, ConfigError> {
    if value.starts_with('/') {
        Ok(value.to_owned())
    } else {
        Err(ConfigError::InvalidPath {
            variable,
            value: value.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup_from(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = LifecycleConfig::from_lookup(lookup_from(&[])).unwrap();
        assert_eq!(config, LifecycleConfig::default());
        assert_eq!(config.drain_delay, Duration::from_secs(5));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(20));
        assert_eq!(config.readiness_path, "/readyz");
    }

    #[test]
    fn environment_overrides_durations_and_paths() {
        let config = LifecycleConfig::from_lookup(lookup_from(&[
            ("DRAIN_DELAY", "250ms"),
            ("SHUTDOWN_TIMEOUT", "1m 30s"),
            ("READINESS_PATH", "/ready"),
            ("LIVENESS_PATH", "/live"),
        ]))
        .unwrap();
        assert_eq!(config.drain_delay, Duration::from_millis(250));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(90));
        assert_eq!(config.readiness_path, "/ready");
        assert_eq!(config.liveness_path, "/live");
    }

    #[test]
    fn zero_means_no_delay() {
        let config = LifecycleConfig::from_lookup(lookup_from(&[("DRAIN_DELAY", "0")])).unwrap();
        assert_eq!(config.drain_delay, Duration::ZERO);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error =
            LifecycleConfig::from_lookup(lookup_from(&[("SHUTDOWN_TIMEOUT", "soon")])).unwrap_err();
        assert!(error.to_string().contains("SHUTDOWN_TIMEOUT"), "{error}");
        let error =
            LifecycleConfig::from_lookup(lookup_from(&[("READINESS_PATH", "ready")])).unwrap_err();
        assert!(error.to_string().contains("READINESS_PATH"), "{error}");
    }
}

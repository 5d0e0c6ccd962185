//! Typed errors of the lifecycle library.

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A duration that humantime cannot parse.
    #[error("{variable}={value:?} is not a duration (use e.g. `250ms`, `5s`): {source}")]
    InvalidDuration {
        /// The variable name.
        variable: &'static str,
        /// The value found.
        value: String,
        /// Why it did not parse.
        #[source]
        source: humantime::DurationError,
    },
    /// A path that does not start with `/`.
    #[error("{variable}={value:?} is not a path (it must start with `/`)")]
    InvalidPath {
        /// The variable name.
        variable: &'static str,
        /// The value found.
        value: String,
    },
}

/// Serving could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The OS signal handlers (SIGTERM, SIGINT) could not be installed.
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// The listener's local address is unavailable.
    #[error("cannot read the listener's address: {0}")]
    Listener(#[source] std::io::Error),
}

//! zdd-lifecycle: makes an axum/tower service zero-downtime-ready on Kubernetes.
//!
//! A service goes through four [`State`]s: **starting** (serving, but readiness answers 503 until
//! [`Lifecycle::mark_ready`], the end of its warm-up), **ready**, **draining** (from the first
//! SIGTERM/SIGINT: readiness answers 503 at once, everything else is served for the drain delay,
//! then the listener closes, keep-alive connections close politely and in-flight requests get up to
//! the shutdown timeout) and **stopped**. A second signal while draining ends at once.
//! [`Lifecycle::serve`] returns a [`DrainReport`] saying how the drain ended, so the binary can
//! exit 0 or non-zero.
//!
//! Liveness (`/healthz`) answers 200 while the process runs; readiness (`/readyz`) answers 200
//! only when ready; `/metrics` serves Prometheus metrics ([`metrics`]). Configure from code
//! ([`LifecycleConfig`] builder methods) or from the environment ([`LifecycleConfig::from_env`]:
//! `DRAIN_DELAY`, `SHUTDOWN_TIMEOUT` as humantime strings, `LIVENESS_PATH`, `READINESS_PATH`,
//! `METRICS_PATH`).
//!
//! # Wrapping an existing axum Router
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use zdd_lifecycle::{Lifecycle, LifecycleConfig};
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     let config = LifecycleConfig::from_env().expect("valid DRAIN_DELAY/SHUTDOWN_TIMEOUT");
//!     let lifecycle = Lifecycle::new(config.version("v1"));
//!     lifecycle.listen_for_signals().expect("signal handlers");
//!
//!     let app = Router::new().route("/", get(|| async { "hello" }));
//!     let app = lifecycle.with_probe_routes(app); // adds /healthz, /readyz, /metrics and request metrics
//!
//!     let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await.unwrap();
//!     let warm_up = lifecycle.clone();
//!     tokio::spawn(async move {
//!         // load models, fill caches...
//!         warm_up.mark_ready();
//!     });
//!     let report = lifecycle.serve(listener, app).await.expect("serve");
//!     report.exit_code()
//! }
//! ```

mod config;
mod connections;
mod error;
pub mod metrics;
mod request;
mod routes;
mod serve;
mod state;

pub use config::{
    ENV_DRAIN_DELAY, ENV_LIVENESS_PATH, ENV_METRICS_PATH, ENV_READINESS_PATH, ENV_SHUTDOWN_TIMEOUT,
    LifecycleConfig, parse_duration,
};
pub use error::{ConfigError, ServeError};
pub use metrics::Metrics;
pub use routes::{RequestMetrics, RequestMetricsFuture, RequestMetricsLayer};
pub use serve::{DrainOutcome, DrainReport, HttpApp};
pub use state::{Lifecycle, State};

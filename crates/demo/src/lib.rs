//! The reference microservice: the talk's demo service, done right, on [`zdd_lifecycle`].
//!
//! CONTRACT: `zdd serve` calls [`main_from_env`]. One binary serves any version (`APP_VERSION`);
//! every answer carries `X-Version`. See `docs/reference-service.md`.

mod config;
mod faults;
mod features;

use std::collections::{BTreeSet, HashMap};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tower::Layer as _;
use tower_http::set_header::{SetResponseHeader, SetResponseHeaderLayer};
use zdd_lifecycle::{DrainReport, Lifecycle};

pub use config::{DemoConfig, DemoConfigError};
pub use faults::Faults;
pub use features::{FEATURES_HEADER, Features};

/// The header naming the version that answered.
pub const VERSION_HEADER: &str = "x-version";
/// Longest `/work` duration accepted, in milliseconds.
pub const MAX_WORK_MS: u64 = 60_000;

/// Exit code for a configuration the demo cannot use.
const EXIT_BAD_INPUT: u8 = 2;

/// Reads the configuration from the environment, serves until the drain ends, and returns the
/// process exit code: 0 after a clean drain, 1 when requests were cut off (shutdown timeout or
/// second signal) or serving failed, 2 for a bad environment variable.
pub fn main_from_env() -> ExitCode {
    let config = match DemoConfig::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("zdd-demo: {error}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    init_logging(config.json_logs);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(config));
    // Connections cut off by the timeout or a second signal must not delay the exit.
    runtime.shutdown_background();
    match result {
        Ok(report) => report.exit_code(),
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "zdd-demo failed");
            ExitCode::FAILURE
        }
    }
}

/// Binds, warms up for `STARTUP_DELAY` (unready meanwhile), serves, and drains on SIGTERM.
pub async fn run(config: DemoConfig) -> anyhow::Result<DrainReport> {
    let lifecycle = Lifecycle::new(config.lifecycle.clone());
    // Before anything slow: a SIGTERM during warm-up must start a drain, not kill the process.
    lifecycle.listen_for_signals()?;
    let listener = tokio::net::TcpListener::bind(config.address)
        .await
        .with_context(|| format!("cannot listen on {}", config.address))?;
    let address = listener.local_addr().context("listener address")?;
    tracing::info!(%address, version = %config.version, "zdd-demo listening");

    let warm_up = lifecycle.clone();
    let startup_delay = config.startup_delay;
    tokio::spawn(async move {
        tokio::time::sleep(startup_delay).await;
        if warm_up.mark_ready() {
            tracing::info!(
                startup_delay = %humantime::format_duration(startup_delay),
                "warm-up done: ready"
            );
        }
    });

    let report = lifecycle.serve(listener, app(&lifecycle, &config)).await?;
    Ok(report)
}

struct AppState {
    version: String,
    host: String,
    started: Instant,
    faults: Arc<Faults>,
    features: Arc<Features>,
    feature_override: bool,
}

/// The demo's service: its routes wrapped by the lifecycle (probes, metrics, request counting),
/// every answer carrying `X-Version`.
pub fn app(lifecycle: &Lifecycle, config: &DemoConfig) -> SetResponseHeader<Router, HeaderValue> {
    let faults = Arc::new(Faults::new(config.error_rate, config.extra_latency));
    let features = Arc::new(Features::new(config.features.clone()));
    let state = Arc::new(AppState {
        version: config.version.clone(),
        host: host_name(),
        started: Instant::now(),
        faults: faults.clone(),
        features: features.clone(),
        feature_override: config.feature_override,
    });
    let mut routes = Router::new()
        .route("/", get(index))
        .route("/work", get(work))
        .with_state(state);
    if config.admin_toggles {
        routes = routes
            .merge(admin_toggles(lifecycle))
            .merge(faults::admin_routes(faults))
            .merge(features::admin_routes(features));
    }
    // A static value: cloning it for every answer touches no shared reference count. One small
    // string leaked per process (`app` is built once).
    let version: &'static str = Box::leak(config.version.clone().into_boxed_str());
    let version = HeaderValue::from_static(version);
    // Around the whole router (not `Router::layer`, which wraps each route): one wrapper per
    // request instead of one per route, and it covers 404s too.
    SetResponseHeaderLayer::overriding(HeaderName::from_static(VERSION_HEADER), version)
        .layer(lifecycle.with_probe_routes(routes))
}

#[derive(Serialize)]
struct IndexBody<'a> {
    version: &'a str,
    host: &'a str,
    uptime_s: f64,
    /// The features this answer was made with.
    features: &'a BTreeSet<String>,
}

/// `GET /`: who answered and with which features (also in the `X-Features` header, so the probe
/// can count answers by feature with `--version-header X-Features`), after any injected fault.
async fn index(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let mut features = state.features.active();
    if state.feature_override {
        for value in headers.get_all(FEATURES_HEADER) {
            let value = String::from_utf8_lossy(value.as_bytes());
            if let Err(message) = features::apply_override(&mut features, &value) {
                return bad_request(&message);
            }
        }
    }
    let injected = state.faults.next();
    if !injected.delay.is_zero() {
        tokio::time::sleep(injected.delay).await;
    }
    if injected.fail {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({
                "error": "injected fault (ERROR_RATE)",
                "version": state.version,
            })),
        )
            .into_response();
    }
    let header = HeaderValue::from_str(&features::header_value(&features))
        .unwrap_or_else(|_| HeaderValue::from_static(features::NO_FEATURES));
    (
        [(HeaderName::from_static(FEATURES_HEADER), header)],
        Json(IndexBody {
            version: &state.version,
            host: &state.host,
            uptime_s: (state.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            features: &features,
        }),
    )
        .into_response()
}

#[derive(Serialize)]
struct WorkBody<'a> {
    version: &'a str,
    host: &'a str,
    worked_ms: u64,
}

/// `GET /work?ms=N`: answers after N ms, for in-flight drain demos.
async fn work(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(ms) = query.get("ms") else {
        return bad_request("missing query parameter ms (0 to 60000)");
    };
    let ms = match ms.parse::<u64>() {
        Ok(ms) if ms <= MAX_WORK_MS => ms,
        _ => {
            return bad_request(&format!(
                "ms={ms:?} is out of range: it must be an integer from 0 to {MAX_WORK_MS}"
            ));
        }
    };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(WorkBody {
        version: &state.version,
        host: &state.host,
        worked_ms: ms,
    })
    .into_response()
}

pub(crate) fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// The probe toggles: `/admin/*`, and the talk's names (also as GET, as the talk used them).
fn admin_toggles(lifecycle: &Lifecycle) -> Router {
    let toggle = |apply: fn(&Lifecycle), what: &'static str| {
        let lifecycle = lifecycle.clone();
        move || {
            apply(&lifecycle);
            tracing::info!(toggle = what, "probe toggled");
            std::future::ready(format!("{what}\n"))
        }
    };
    let ready = toggle(|lifecycle| lifecycle.set_readiness(true), "ready");
    let unready = toggle(|lifecycle| lifecycle.set_readiness(false), "unready");
    let healthy = toggle(|lifecycle| lifecycle.set_liveness(true), "healthy");
    let unhealthy = toggle(|lifecycle| lifecycle.set_liveness(false), "unhealthy");
    Router::new()
        .route("/admin/ready", post(ready.clone()))
        .route("/admin/unready", post(unready.clone()))
        .route("/admin/healthy", post(healthy.clone()))
        .route("/admin/unhealthy", post(unhealthy.clone()))
        .route("/doReady", post(ready.clone()).get(ready))
        .route("/doNotReady", post(unready.clone()).get(unready))
        .route("/doHealthz", post(healthy.clone()).get(healthy))
        .route("/doUnHealthz", post(unhealthy.clone()).get(unhealthy))
}

/// The replica's name: `HOSTNAME` when set (the pod name on Kubernetes; the local platform sets it
/// per replica), else the kernel's host name.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Colour only on a terminal, and never with `NO_COLOR` set (https://no-color.org).
pub fn colour_on_stderr() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none()
}

fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_on_stderr())
        .with_writer(std::io::stderr);
    // try_init: a host binary (`zdd serve`) may have installed a subscriber already.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

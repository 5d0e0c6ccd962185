//! The `zdd` tool as a library: the CLI's commands, the strategy engine, the platforms and routers.
//!
//! Layout: `spec` (the rollout file) → `engine` (runs a strategy's steps) → `strategy` (one file per
//! strategy) → `platform` (`local` | `kubernetes`) → `router` (the local platform's data plane).

pub mod cli;
pub mod commands;
pub mod engine;
pub mod platform;
pub mod router;
pub mod spec;
pub mod strategy;

/// Human-readable logs on stderr; `RUST_LOG` overrides the level; `LOG_FORMAT=json` for JSON.
pub fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

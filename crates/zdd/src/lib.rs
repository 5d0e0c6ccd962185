//! The `zdd` tool as a library. Its modules form layers that depend downward only (a test,
//! `architecture::layers_depend_downward_only`, holds them to it):
//!
//! ```text
//! cli, commands      the command line: one file per subcommand
//! check              `zdd check`: one app's lifecycle measured on the local platform, judged
//! rollout            one whole run: deploy, traffic, strategy, rollback, status, summary
//! strategy           one file per strategy, written in the engine's step API
//! analysis           measurements of the new version that can roll it back
//! engine             the step API: scale, route, check the data plane, retire, pause
//! platform           where replicas run: local (processes + a router) or kubernetes
//! spec, events       the rollout file, and what happened during a run
//! model, http_get,   plain data every layer shares; one small HTTP client; the lock policy
//! sync
//! ```
//!
//! docs/architecture.md walks one `zdd rollout` through them.

pub mod analysis;
#[cfg(test)]
mod architecture;
pub mod check;
pub mod cli;
pub mod commands;
pub mod engine;
pub mod events;
pub mod http_get;
pub mod model;
pub mod platform;
pub mod rollout;
pub mod spec;
pub mod strategy;
pub mod sync;

/// Raises the soft open-file limit to the hard one, as Go programs (Traefik among them) do: the
/// probe, the router and the replicas' connections are bounded by the work in flight, and a stall
/// at a high rate puts a lot of work in flight. Children (replicas, Traefik) inherit the limit.
pub fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::debug!("open-file limit stays {soft}: {err}");
    }
}

/// Human-readable logs on stderr (coloured only on a terminal without `NO_COLOR`); `RUST_LOG`
/// overrides the level; `LOG_FORMAT=json` for JSON.
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
        .with_ansi(zdd_demo::colour_on_stderr())
        .with_writer(std::io::stderr);
    if std::env::var("LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

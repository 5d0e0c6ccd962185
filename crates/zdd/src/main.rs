//! `zdd`: zero-downtime deployments, run locally or on Kubernetes, proved with real traffic.

use std::process::ExitCode;

use clap::Parser;

use zdd::cli::{Cli, Command};
use zdd::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The reference service runs its own runtime and signal handling.
    if let Command::Serve = cli.command {
        return zdd_demo::main_from_env();
    }
    zdd::init_tracing(cli.verbose);
    zdd::raise_open_file_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("zdd: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => unreachable!("handled above"),
            Command::Probe(args) => commands::probe::run(args).await,
            Command::Demo(args) => commands::demo::run(args).await,
            Command::Check(args) => commands::check::run(args).await,
            Command::Rollout(args) => commands::rollout::run(args).await,
            Command::Promote(args) => commands::control::promote(args).await,
            Command::Abort(args) => commands::control::abort(args).await,
            Command::Status(args) => commands::control::status(args).await,
            Command::Drain(args) => commands::control::drain(args).await,
            Command::Uncordon(args) => commands::control::uncordon(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("zdd: {err:#}");
            ExitCode::from(1)
        }
    }
}

//! The command line. Each subcommand's flags live beside its implementation in `commands/`.

use clap::{Parser, Subcommand};

use crate::commands;

#[derive(Debug, Parser)]
#[command(
    name = "zdd",
    version,
    about = "Zero-downtime deployments, run locally or on Kubernetes, proved with real traffic"
)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the reference microservice (the same as the `zdd-demo` binary; configured by environment).
    Serve,
    /// Send open-loop traffic to a URL and report every failure, outage and version.
    Probe(commands::probe::ProbeArgs),
    /// Run the talk's strategies locally, from v1 to v2, and compare what each costs.
    Demo(commands::demo::DemoArgs),
    /// Is a service safe to roll? Its start, SIGTERM and exit measured in eight checks, with the
    /// preStop sleep and grace period to set.
    Check(commands::check::CheckArgs),
    /// Run one rollout described by a spec file.
    Rollout(commands::rollout::RolloutArgs),
    /// Let a rollout that waits for a person go on.
    Promote(commands::control::ControlArgs),
    /// Stop a rollout and send all traffic back to the old version.
    Abort(commands::control::ControlArgs),
    /// Show the current rollout.
    Status(commands::control::StatusArgs),
    /// Drain a node of the running local rollout (cordon, evict its pods through the disruption
    /// budget, wait until they are gone), as `kubectl drain` does.
    Drain(commands::control::DrainArgs),
    /// Let a drained node of the running local rollout take pods again.
    Uncordon(commands::control::UncordonArgs),
}

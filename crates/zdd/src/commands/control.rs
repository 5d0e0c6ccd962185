//! `zdd promote`, `zdd abort`, `zdd status`: talk to a running rollout through the control socket
//! in its run directory (`./zdd-runs/current` by default, the last rollout started here).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::engine::control::RolloutStatus;
use crate::rollout::control_socket::{self, ControlCommand, ControlReply};

#[derive(Debug, clap::Args)]
pub struct ControlArgs {
    /// The rollout's run directory.
    #[arg(
        long,
        env = "ZDD_RUN_DIR",
        default_value = "zdd-runs/current",
        value_name = "DIR"
    )]
    pub run_dir: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub control: ControlArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

async fn send(args: &ControlArgs, command: ControlCommand) -> anyhow::Result<ControlReply> {
    control_socket::send(&args.run_dir, command)
        .await
        .with_context(|| {
            format!(
                "no rollout answers at {} (is `zdd rollout` running? see --run-dir)",
                control_socket::socket_path(&args.run_dir).display()
            )
        })
}

fn exit_for(reply: &ControlReply) -> ExitCode {
    if reply.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub async fn promote(args: ControlArgs) -> anyhow::Result<ExitCode> {
    let reply = send(&args, ControlCommand::Promote).await?;
    println!("{}", reply.message);
    Ok(exit_for(&reply))
}

pub async fn abort(args: ControlArgs) -> anyhow::Result<ExitCode> {
    let reply = send(&args, ControlCommand::Abort).await?;
    println!("{}", reply.message);
    Ok(exit_for(&reply))
}

pub async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let reply = send(&args.control, ControlCommand::Status).await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&reply.status)?),
        OutputFormat::Text => print!("{}", render_status(&reply.status)),
    }
    Ok(exit_for(&reply))
}

pub fn render_status(status: &RolloutStatus) -> String {
    let mut out = format!(
        "rollout {} ({}): {} → {}, {:?}\n",
        status.name, status.strategy, status.from, status.to, status.phase
    );
    if let Some(step) = &status.step {
        out.push_str(&format!("  {step}\n"));
    }
    if let Some(message) = &status.message {
        out.push_str(&format!("  {message}\n"));
    }
    for v in &status.versions {
        out.push_str(&format!(
            "  {}: {} desired, {} ready, {} running, {} terminating\n",
            v.name, v.desired, v.ready, v.running, v.terminating
        ));
    }
    for p in &status.pods {
        let state = if p.terminating {
            "terminating"
        } else if p.ready {
            "ready"
        } else {
            "not ready"
        };
        out.push_str(&format!(
            "    {} ({}) {state}, pid {}, restarts {}\n",
            p.name,
            p.version,
            p.pid.map_or("-".to_string(), |pid| pid.to_string()),
            p.restarts
        ));
    }
    let shares: Vec<String> = status
        .by_version
        .iter()
        .map(|(v, n)| format!("{v} {n}"))
        .collect();
    out.push_str(&format!(
        "  traffic: {:.1}s, {} sent, {} ok, {} failed [{}]\n",
        status.elapsed_s,
        status.sent,
        status.ok,
        status.failed,
        shares.join(", ")
    ));
    out
}

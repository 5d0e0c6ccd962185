//! `zdd promote`, `zdd abort`, `zdd status`, `zdd drain`, `zdd uncordon`: talk to a running
//! rollout through the control socket in its run directory (`./zdd-runs/current` by default, the
//! last rollout started here).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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

#[derive(Debug, clap::Args)]
pub struct DrainArgs {
    /// The node, as `zdd status` names it (node-1, node-2, ...).
    pub node: String,
    /// Give up when one pod's eviction has been refused by the disruption budget this long
    /// (`kubectl drain --timeout`).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s", value_name = "DURATION")]
    pub timeout: Duration,
    #[command(flatten)]
    pub control: ControlArgs,
}

#[derive(Debug, clap::Args)]
pub struct UncordonArgs {
    /// The node, as `zdd status` names it.
    pub node: String,
    #[command(flatten)]
    pub control: ControlArgs,
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

/// Like `kubectl drain`: returns once every evicted pod is gone (or the budget blocked one too
/// long); the node stays cordoned until `zdd uncordon`.
pub async fn drain(args: DrainArgs) -> anyhow::Result<ExitCode> {
    let command = ControlCommand::Drain {
        node: args.node,
        eviction_timeout_s: args.timeout.as_secs_f64(),
    };
    let reply = send(&args.control, command).await?;
    report(&reply)
}

pub async fn uncordon(args: UncordonArgs) -> anyhow::Result<ExitCode> {
    let reply = send(&args.control, ControlCommand::Uncordon { node: args.node }).await?;
    report(&reply)
}

/// The reply's message: on stdout when the command did its job, on stderr when it did not.
fn report(reply: &ControlReply) -> anyhow::Result<ExitCode> {
    if reply.ok {
        println!("{}", reply.message);
    } else {
        eprintln!("zdd: {}", reply.message);
    }
    Ok(exit_for(reply))
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
    let mut out = if status.to.is_empty() {
        // A cluster upgrade: one version, the nodes change under it.
        format!(
            "{} ({}) under {}, {:?}\n",
            status.name, status.strategy, status.from, status.phase
        )
    } else {
        format!(
            "rollout {} ({}): {} → {}, {:?}\n",
            status.name, status.strategy, status.from, status.to, status.phase
        )
    };
    if let Some(step) = &status.step {
        out.push_str(&format!("  {step}\n"));
    }
    if let Some(message) = &status.message {
        out.push_str(&format!("  {message}\n"));
    }
    if let Some(analysis) = &status.analysis {
        out.push_str(&format!("  {analysis}\n"));
    }
    for v in &status.versions {
        out.push_str(&format!(
            "  {}: {} desired, {} ready, {} running, {} terminating\n",
            v.name, v.desired, v.ready, v.running, v.terminating
        ));
    }
    for p in &status.pods {
        if let (None, Some(reason)) = (&p.node, &p.pending) {
            out.push_str(&format!(
                "    {} ({}) pending: {reason}\n",
                p.name, p.version
            ));
            continue;
        }
        let state = if p.terminating {
            "terminating"
        } else if p.ready {
            "ready"
        } else {
            "not ready"
        };
        let place = p
            .node
            .as_ref()
            .map_or(String::new(), |node| format!(" on {node}"));
        out.push_str(&format!(
            "    {} ({}) {state}{place}, pid {}, restarts {}\n",
            p.name,
            p.version,
            p.pid.map_or("-".to_string(), |pid| pid.to_string()),
            p.restarts
        ));
    }
    for node in &status.nodes {
        let cordoned = if node.unschedulable {
            " (cordoned)"
        } else {
            ""
        };
        let pods = if node.pods.is_empty() {
            "no pods".to_string()
        } else {
            node.pods.join(", ")
        };
        out.push_str(&format!("  node {}{cordoned}: {pods}\n", node.name));
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

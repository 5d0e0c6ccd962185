//! `zdd promote`, `zdd abort`, `zdd status`: talk to a running rollout.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ControlArgs {}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {}

pub async fn promote(_args: ControlArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("zdd promote is not implemented yet")
}

pub async fn abort(_args: ControlArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("zdd abort is not implemented yet")
}

pub async fn status(_args: StatusArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("zdd status is not implemented yet")
}

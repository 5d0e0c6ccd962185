//! `zdd rollout`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct RolloutArgs {}

pub async fn run(_args: RolloutArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("zdd rollout is not implemented yet")
}

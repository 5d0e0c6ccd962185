//! Platforms: where replicas run and how traffic reaches them.
//!
//! The engine drives a rollout only through [`Platform`], so one strategy implementation works on
//! both platforms:
//! - `local`: replicas are child processes; a supervisor plays the kubelet, an endpoints view plays
//!   the endpoint controller (with a propagation delay), a router plays kube-proxy and the ingress.
//! - `kubernetes`: a Deployment per version, a Service, and a TraefikService or HTTPRoute for weights.

mod any;
pub mod kubernetes;
pub mod local;
pub mod matches;

pub use any::AnyPlatform;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::model::{
    MirrorStats, NodeStatus, PlatformStatus, Routing, VersionStatus, VersionTemplate,
};

/// The data plane that carries the traffic: the `--router` flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RouterKind {
    /// Local: zdd's own router (crates/router).
    #[default]
    Builtin,
    /// Local: a real Traefik v3 through its file provider. Kubernetes: a `TraefikService`
    /// (`traefik.io/v1alpha1`) with weighted services.
    Traefik,
    /// Kubernetes: only the Service (selectors and replica ratios, no weights).
    Service,
    /// Kubernetes: a Gateway API `HTTPRoute` with weighted `backendRefs`.
    GatewayApi,
}

impl RouterKind {
    /// As the `--router` flag spells it.
    pub fn name(self) -> &'static str {
        match self {
            RouterKind::Builtin => "builtin",
            RouterKind::Traefik => "traefik",
            RouterKind::Service => "service",
            RouterKind::GatewayApi => "gateway-api",
        }
    }
}

/// How zdd itself can reach the main route: for the probe's traffic and the route checks.
#[derive(Clone, Debug, PartialEq)]
pub enum TrafficAccess {
    /// The main route answers at this URL from where zdd runs.
    Url(String),
    /// Not from where zdd runs (Kubernetes without `--verify-url`). The engine then sends no
    /// traffic and measures no budget, and before scaling a version to zero it waits this fixed
    /// delay instead of proving with traffic that no request reaches that version.
    Unreachable { settle_delay: Duration },
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout { what: String, waited: Duration },
    /// A drain gave up: the disruption budget refused an eviction for longer than the timeout.
    #[error(
        "draining {node}: the eviction of {pod} was refused for {} by the disruption budget \
         ({budget}: it needs {needed} healthy pods and has {healthy})",
        humantime::format_duration(*waited)
    )]
    EvictionBlocked {
        node: String,
        pod: String,
        budget: String,
        needed: u32,
        healthy: u32,
        waited: Duration,
    },
    #[error("{0}")]
    Other(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = PlatformError> = std::result::Result<T, E>;

/// What a rollout needs from the place where the app runs.
///
/// Methods that change state return once the platform has accepted the desired state (like
/// `kubectl scale`); the `wait_*` methods observe the result. None of them sleeps a fixed time.
pub trait Platform: Send {
    /// Creates the version if it does not exist yet, and sets its desired replica count.
    /// Scaling down stops replicas the Kubernetes way: preStop sleep, SIGTERM, SIGKILL after the
    /// grace period.
    fn scale(
        &mut self,
        version: &VersionTemplate,
        replicas: u32,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Waits until at least `ready` replicas of `version` pass readiness.
    fn wait_ready(
        &mut self,
        version: &str,
        ready: u32,
        timeout: Duration,
    ) -> impl Future<Output = Result<VersionStatus>> + Send;

    /// Waits until at most `running` replicas of `version` exist (terminating ones included).
    fn wait_running_at_most(
        &mut self,
        version: &str,
        running: u32,
        timeout: Duration,
    ) -> impl Future<Output = Result<VersionStatus>> + Send;

    /// Applies the routing (selector switch, weights, preview route).
    fn set_routing(&mut self, routing: &Routing) -> impl Future<Output = Result<()>> + Send;

    fn status(&mut self) -> impl Future<Output = Result<PlatformStatus>> + Send;

    /// URL of the main route, where users' (and the probe's) traffic goes.
    fn main_url(&self) -> String;

    /// Whether the engine's own traffic reaches the main route from here. By default it does, at
    /// [`Platform::main_url`] (the local platform's router always answers on loopback).
    fn traffic_access(&self) -> TrafficAccess {
        TrafficAccess::Url(self.main_url())
    }

    /// URL of the preview route, when one is set.
    fn preview_url(&self) -> Option<String>;

    /// The mirror targets' counters since their mirror route was set (empty with no mirror route,
    /// or where the data plane does not count copies).
    fn mirror_stats(&mut self) -> impl Future<Output = Result<Vec<MirrorStats>>> + Send {
        async { Ok(Vec::new()) }
    }

    /// The mirror counters through a handle that stays usable while the engine drives the
    /// platform (the analysis reads them every interval); `None` where the data plane does not
    /// count copies (Kubernetes).
    fn mirror_counters(&self) -> Option<Arc<dyn MirrorCounters>> {
        None
    }

    /// Node maintenance (`kubectl drain`, `kubectl uncordon`), through a handle that stays usable
    /// while the engine drives the platform (so `zdd drain` works against a running rollout).
    fn nodes(&self) -> Arc<dyn NodeMaintenance>;

    /// Ends the run. Local: every replica is stopped and reaped, and the router is shut down.
    /// Kubernetes: leaves the cluster as the rollout left it.
    fn shutdown(&mut self) -> impl Future<Output = Result<()>> + Send;
}

/// Reads what [`Platform::mirror_stats`] reads, from beside the engine.
pub trait MirrorCounters: Send + Sync {
    fn read(&self) -> BoxFuture<'_, Result<Vec<MirrorStats>>>;
}

/// What a node upgrade does to a node, in `kubectl` terms.
pub trait NodeMaintenance: Send + Sync {
    /// The nodes, in order.
    fn names(&self) -> Vec<String>;

    /// The nodes with their pods, now (`kubectl get nodes`, `kubectl get pods -o wide`).
    fn statuses(&self) -> Vec<NodeStatus>;

    /// `kubectl drain NODE`: cordons the node, evicts each of its pods through the eviction API
    /// (which honours the PodDisruptionBudget: a refused eviction is retried, as `kubectl drain`
    /// does, until `eviction_timeout` has passed for one pod, then
    /// [`PlatformError::EvictionBlocked`]), and returns once every evicted pod is gone (preStop
    /// and grace period included) with their names. Their ReplicaSets create replacements
    /// elsewhere. The node stays cordoned.
    fn drain<'a>(
        &'a self,
        node: &'a str,
        eviction_timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>>>;

    /// `kubectl uncordon NODE`: the node takes pods again.
    fn uncordon(&self, node: &str) -> Result<()>;
}

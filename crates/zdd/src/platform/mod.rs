//! Platforms: where replicas run and how traffic reaches them.
//!
//! The engine drives a rollout only through [`Platform`], so one strategy implementation works on
//! both platforms:
//! - `local`: replicas are child processes; a supervisor plays the kubelet, an endpoints view plays
//!   the endpoint controller (with a propagation delay), a router plays kube-proxy and the ingress.
//! - `kubernetes`: a Deployment per version, a Service, and a TraefikService or HTTPRoute for weights.

pub mod kubernetes;
pub mod local;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One version of the app as a platform runs it. The engine builds it from the spec.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionTemplate {
    /// Version name, for example `v1`. Becomes the `version` label / the `X-Zdd-Version` header.
    pub name: String,
    /// Local platform: the program and its arguments; `{port}` is replaced by the replica's port,
    /// which is also given as `PORT` in the environment.
    pub command: Vec<String>,
    /// Kubernetes platform: the container image.
    pub image: Option<String>,
    /// Environment of every replica of this version.
    pub env: BTreeMap<String, String>,
    pub readiness: ProbeSpec,
    pub liveness: Option<ProbeSpec>,
    /// Sleep before SIGTERM when a replica is stopped (the `preStop` sleep action).
    pub pre_stop_sleep: Duration,
    /// From the start of preStop to SIGKILL.
    pub termination_grace_period: Duration,
    /// A new replica counts as available only after being ready this long (Deployment
    /// `minReadySeconds`).
    pub min_ready: Duration,
}

/// An HTTP probe with Kubernetes semantics.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeSpec {
    pub path: String,
    pub period: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub initial_delay: Duration,
}

/// Which replicas the main route sends traffic to.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TrafficPolicy {
    /// Every ready replica of every version, round robin: a Service that selects on `app` only
    /// (recreate, rolling update, canary by replicas).
    AllReady,
    /// Only the named version: a Service selector on `version` (blue-green).
    Only(String),
    /// A weighted split between versions (TraefikService `weighted`, HTTPRoute `backendRefs`).
    /// Weights are relative; within a version, round robin over its ready replicas.
    Weighted(Vec<(String, u32)>),
}

/// What the data plane should do. Applied as a whole by [`Platform::set_routing`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Routing {
    pub main: TrafficPolicy,
    /// Blue-green's preview route: a second entry point that reaches only this version.
    pub preview: Option<String>,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            main: TrafficPolicy::AllReady,
            preview: None,
        }
    }
}

/// Replica counts of one version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionStatus {
    pub name: String,
    /// Replicas asked for.
    pub desired: u32,
    /// Replicas passing readiness (and past minReadySeconds where the platform knows it).
    pub ready: u32,
    /// Replicas that exist, ready or not, including those terminating.
    pub running: u32,
    pub terminating: u32,
}

/// One replica, for `zdd status` and for tests that kill a replica.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PodStatus {
    pub name: String,
    pub version: String,
    /// Local platform: the child's process id.
    pub pid: Option<u32>,
    /// Local platform: the replica's own port.
    pub port: Option<u16>,
    pub ready: bool,
    pub terminating: bool,
    pub restarts: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlatformStatus {
    pub versions: Vec<VersionStatus>,
    pub pods: Vec<PodStatus>,
    pub routing: Routing,
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

    /// Ends the run. Local: every replica is stopped and reaped, and the router is shut down.
    /// Kubernetes: leaves the cluster as the rollout left it.
    fn shutdown(&mut self) -> impl Future<Output = Result<()>> + Send;
}

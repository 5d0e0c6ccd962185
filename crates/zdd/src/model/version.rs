//! One version of the app, as every platform runs it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Scheduling;

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
    /// Pod anti-affinity and topology spread.
    pub scheduling: Scheduling,
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

impl ProbeSpec {
    /// A readiness probe on `path` with the spec's defaults: every 500 ms, 1 s timeout, one
    /// failure makes a replica unready and one success ready again.
    pub fn readiness(path: &str) -> Self {
        ProbeSpec {
            path: path.to_owned(),
            period: Duration::from_millis(500),
            timeout: Duration::from_secs(1),
            failure_threshold: 1,
            success_threshold: 1,
            initial_delay: Duration::ZERO,
        }
    }
}

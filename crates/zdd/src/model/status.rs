//! What exists right now: replica counts per version, the replicas themselves and their nodes,
//! the routing.

use serde::{Deserialize, Serialize};

use super::{NodeStatus, Routing};

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
    /// The node it is bound to; `None` while pending (or where the platform does not say).
    #[serde(default)]
    pub node: Option<String>,
    /// Why no node takes it yet (a pod's `FailedScheduling` event); `None` once scheduled.
    #[serde(default)]
    pub pending: Option<String>,
}

/// A platform's view of the whole app.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlatformStatus {
    pub versions: Vec<VersionStatus>,
    pub pods: Vec<PodStatus>,
    pub routing: Routing,
    /// The nodes, when the platform knows them (local: the simulated nodes).
    pub nodes: Vec<NodeStatus>,
}

/// What a mirror target made of the copies it was sent since its mirror route was set: the data
/// plane's own counters (the probe never sees a copy, nor does a user).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MirrorStats {
    /// The version the copies went to.
    pub version: String,
    /// Copies sent.
    pub sent: u64,
    /// Answered 1xx to 3xx.
    pub ok: u64,
    pub http_4xx: u64,
    pub http_5xx: u64,
    /// Copies that got no answer, by kind (`refused`, `reset`, `timeout`, `other`).
    pub failed_by_kind: std::collections::BTreeMap<String, u64>,
    /// Not sent: the queue of copies was full.
    pub dropped: u64,
    /// Not sent: the request's body was larger than a copy may carry.
    pub skipped_too_large: u64,
    /// Latency of the answered copies, in milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl MirrorStats {
    /// Copies answered 4xx or 5xx, or not answered at all.
    pub fn failed(&self) -> u64 {
        self.http_4xx + self.http_5xx + self.failed_by_kind.values().sum::<u64>()
    }

    /// The copies counted since `before` (an earlier reading of the same mirror). The latency
    /// quantiles stay those since the mirror was set: they cannot be subtracted.
    pub fn since(&self, before: &MirrorStats) -> MirrorStats {
        let failed_by_kind = self
            .failed_by_kind
            .iter()
            .map(|(kind, n)| {
                let was = before.failed_by_kind.get(kind).copied().unwrap_or(0);
                (kind.clone(), n.saturating_sub(was))
            })
            .collect();
        MirrorStats {
            version: self.version.clone(),
            sent: self.sent.saturating_sub(before.sent),
            ok: self.ok.saturating_sub(before.ok),
            http_4xx: self.http_4xx.saturating_sub(before.http_4xx),
            http_5xx: self.http_5xx.saturating_sub(before.http_5xx),
            failed_by_kind,
            dropped: self.dropped.saturating_sub(before.dropped),
            skipped_too_large: self
                .skipped_too_large
                .saturating_sub(before.skipped_too_large),
            p50_ms: self.p50_ms,
            p99_ms: self.p99_ms,
        }
    }
}

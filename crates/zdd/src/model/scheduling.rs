//! Where replicas may run and how many may be evicted at once: pod anti-affinity and topology
//! spread (fields of the pod template), the app's PodDisruptionBudget, and the nodes themselves.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A replica count given as a number or as a percentage of the desired replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntOrPercent {
    Count(u32),
    Percent(u32),
}

impl IntOrPercent {
    /// Resolves against `replicas`; percentages round up or down as asked (the Deployment
    /// controller rounds `maxSurge` up and `maxUnavailable` down, the disruption controller rounds
    /// `minAvailable` up).
    pub fn resolve(self, replicas: u32, round_up: bool) -> u32 {
        match self {
            IntOrPercent::Count(n) => n,
            IntOrPercent::Percent(p) => {
                let scaled = u64::from(replicas) * u64::from(p);
                let whole = if round_up {
                    scaled.div_ceil(100)
                } else {
                    scaled / 100
                };
                whole as u32
            }
        }
    }
}

impl fmt::Display for IntOrPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrPercent::Count(n) => write!(f, "{n}"),
            IntOrPercent::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Pod anti-affinity against the app's other replicas (every version), topology key the node
/// (`kubernetes.io/hostname`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AntiAffinity {
    /// No rule.
    #[default]
    None,
    /// `preferredDuringSchedulingIgnoredDuringExecution`: the node with the fewest replicas wins.
    Preferred,
    /// `requiredDuringSchedulingIgnoredDuringExecution`: never two replicas on one node; a
    /// replica that finds no such node stays pending.
    Required,
}

impl AntiAffinity {
    pub fn name(self) -> &'static str {
        match self {
            AntiAffinity::None => "none",
            AntiAffinity::Preferred => "preferred",
            AntiAffinity::Required => "required",
        }
    }
}

/// Where a version's replicas may be scheduled (part of the pod template).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scheduling {
    pub anti_affinity: AntiAffinity,
    /// A topology spread constraint on the node, `whenUnsatisfiable: DoNotSchedule`: a node may
    /// hold at most this many more of the app's replicas than the node with the fewest.
    pub max_skew: Option<u32>,
}

/// The app's PodDisruptionBudget (selector: the app, every version). It limits evictions (node
/// drains), not rollouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisruptionBudget {
    MinAvailable(IntOrPercent),
    MaxUnavailable(IntOrPercent),
}

impl fmt::Display for DisruptionBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisruptionBudget::MinAvailable(n) => write!(f, "minAvailable {n}"),
            DisruptionBudget::MaxUnavailable(n) => write!(f, "maxUnavailable {n}"),
        }
    }
}

/// One node, for `zdd status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    /// Cordoned: no new replica is scheduled on it (`kubectl cordon`, the start of a drain).
    pub unschedulable: bool,
    /// Replicas bound to it, terminating ones included.
    pub pods: Vec<String>,
}

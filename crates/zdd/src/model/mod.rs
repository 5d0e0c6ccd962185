//! Plain data every layer shares: what a version is, where it may run, how traffic is routed,
//! what replicas exist. No behaviour beyond formatting; the layers above give it meaning.

mod routing;
mod scheduling;
mod status;
mod version;

pub use routing::{
    HeaderRoute, MirrorRoute, RequestMatch, Routing, TrafficPolicy, ValueMatch, Weights,
    describe_matches,
};
pub use scheduling::{AntiAffinity, DisruptionBudget, IntOrPercent, NodeStatus, Scheduling};
pub use status::{MirrorStats, PlatformStatus, PodStatus, VersionStatus};
pub use version::{ProbeSpec, VersionTemplate};

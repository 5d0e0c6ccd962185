//! Plain data every layer shares: what a version is, how traffic is routed, what replicas exist.
//! No behaviour beyond formatting; the layers above give it meaning.

mod routing;
mod status;
mod version;

pub use routing::{Routing, TrafficPolicy, Weights};
pub use status::{PlatformStatus, PodStatus, VersionStatus};
pub use version::{ProbeSpec, VersionTemplate};

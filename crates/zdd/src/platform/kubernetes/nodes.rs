//! Node maintenance on a real cluster: zdd does not drain the nodes of a cluster itself (that is
//! the cluster operator's `kubectl drain` or the provider's upgrade); every request says how to
//! measure one instead.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::model::NodeStatus;
use crate::platform::{NodeMaintenance, PlatformError, Result};

/// How to measure a drain on a real cluster, given in every refusal.
pub const MEASURE_A_DRAIN: &str = "zdd does not drain the nodes of a Kubernetes cluster: run \
    `zdd probe URL` on the app's URL while `kubectl drain NODE --ignore-daemonsets` runs (see \
    docs/strategies/cluster-upgrade.md); `zdd drain` and `clusterUpgrade` run on the local \
    platform's simulated nodes";

pub struct ClusterNodes;

impl NodeMaintenance for ClusterNodes {
    fn names(&self) -> Vec<String> {
        Vec::new()
    }

    fn statuses(&self) -> Vec<NodeStatus> {
        Vec::new()
    }

    fn drain<'a>(
        &'a self,
        _node: &'a str,
        _eviction_timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async { Err(PlatformError::Other(MEASURE_A_DRAIN.into())) })
    }

    fn uncordon(&self, _node: &str) -> Result<()> {
        Err(PlatformError::Other(MEASURE_A_DRAIN.into()))
    }
}

//! The drainer's part: `kubectl drain` and `kubectl uncordon` on the simulated nodes.
//!
//! A drain cordons the node, then asks the eviction API to evict each of its replicas. A refused
//! eviction (the disruption budget's 429) is asked again every [`EVICTION_RETRY`], as `kubectl
//! drain` does (every 5 s; a local demo wants to see it sooner), until the same replica has been
//! refused for longer than the timeout: then the drain gives up and names the budget. Once every
//! replica is evicted, the drain waits until they are gone (preStop, SIGTERM, grace period), as
//! `kubectl drain` waits for the pods' deletion. The node stays cordoned.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;

use super::supervisor::{EvictError, Supervisor};
use crate::events::{Event, EventLog};
use crate::model::{DisruptionBudget, NodeStatus};
use crate::platform::{NodeMaintenance, PlatformError, Result};

/// How often a refused eviction is asked again.
pub const EVICTION_RETRY: Duration = Duration::from_millis(250);

/// The simulated nodes of a local platform. Cheap to share.
pub struct LocalNodes {
    pub(super) supervisor: Supervisor,
    /// The app's PodDisruptionBudget (every version counts).
    pub(super) budget: Option<DisruptionBudget>,
    pub(super) events: EventLog,
}

impl LocalNodes {
    async fn drain_node(&self, node: &str, eviction_timeout: Duration) -> Result<Vec<String>> {
        self.supervisor.cordon(node)?;
        let mut changes = self.supervisor.subscribe();
        let mut evicted = Vec::new();
        // Since when each replica's eviction has been refused.
        let mut refused_since: BTreeMap<String, Instant> = BTreeMap::new();
        loop {
            let (active, _) = self.supervisor.pods_on(node)?;
            if active.is_empty() {
                break;
            }
            let mut any_refused = false;
            for pod in active {
                match self.supervisor.evict(&pod, self.budget) {
                    Ok(()) => {
                        refused_since.remove(&pod);
                        evicted.push(pod);
                    }
                    Err(EvictError::Gone) => {}
                    Err(EvictError::Refused(refusal)) => {
                        any_refused = true;
                        let since = *refused_since.entry(pod.clone()).or_insert_with(|| {
                            self.events.emit(Event::EvictionRefused {
                                pod: pod.clone(),
                                budget: refusal.budget.to_string(),
                                healthy: refusal.healthy,
                                needed: refusal.needed,
                            });
                            Instant::now()
                        });
                        if since.elapsed() >= eviction_timeout {
                            return Err(PlatformError::EvictionBlocked {
                                node: node.to_owned(),
                                pod,
                                budget: refusal.budget.to_string(),
                                needed: refusal.needed,
                                healthy: refusal.healthy,
                                waited: since.elapsed(),
                            });
                        }
                    }
                }
            }
            if any_refused {
                tokio::time::sleep(EVICTION_RETRY).await;
            } else {
                // Every eviction went through: the next look finds the node empty. Never a loop
                // that does not yield, whatever happens.
                tokio::task::yield_now().await;
            }
        }
        // Every replica is evicted; wait until the terminating ones are gone from the node.
        loop {
            changes.borrow_and_update();
            let (_, leaving) = self.supervisor.pods_on(node)?;
            if leaving.is_empty() {
                break;
            }
            // Each termination ends by itself (SIGKILL after the grace period); the poll is a
            // guard against a missed change.
            let _ = tokio::time::timeout(EVICTION_RETRY, changes.changed()).await;
        }
        self.events.emit(Event::NodeDrained {
            node: node.to_owned(),
            pods: evicted.clone(),
        });
        Ok(evicted)
    }
}

impl NodeMaintenance for LocalNodes {
    fn names(&self) -> Vec<String> {
        self.supervisor.node_names()
    }

    fn statuses(&self) -> Vec<NodeStatus> {
        self.supervisor.node_statuses()
    }

    fn drain<'a>(
        &'a self,
        node: &'a str,
        eviction_timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        self.drain_node(node, eviction_timeout).boxed()
    }

    fn uncordon(&self, node: &str) -> Result<()> {
        self.supervisor.uncordon(node)
    }
}

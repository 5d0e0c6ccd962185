//! The replica set on its nodes: binding pending replicas where the scheduler says (again each
//! time a node or a replica changes, as kube-scheduler retries on cluster events), cordoning and
//! returning nodes, and evicting a replica through the eviction API's budget check.

use std::sync::Arc;

use super::{Changes, Pod, State, Supervisor, reconcile};
use crate::events::Event;
use crate::model::{DisruptionBudget, NodeStatus};
use crate::platform::local::eviction::{self, Refusal};
use crate::platform::local::scheduler::{NodeView, place};
use crate::platform::{PlatformError, Result};
use crate::sync::lock;

/// Why an eviction did not happen.
#[derive(Debug)]
pub enum EvictError {
    /// The pod is gone or already terminating: nothing left to evict.
    Gone,
    /// The disruption budget refused it (HTTP 429): retry later.
    Refused(Refusal),
}

impl State {
    fn node_views(&self) -> Vec<NodeView> {
        let mut views: Vec<NodeView> = self
            .nodes
            .iter()
            .map(|node| NodeView {
                name: node.name.clone(),
                unschedulable: node.unschedulable,
                ..NodeView::default()
            })
            .collect();
        for pod in &self.pods {
            let state = lock(&pod.state);
            let Some(view) = state
                .node
                .as_ref()
                .and_then(|node| views.iter_mut().find(|view| view.name == *node))
            else {
                continue;
            };
            if state.terminating {
                view.terminating += 1;
            } else {
                view.replicas += 1;
            }
        }
        views
    }

    /// Binds every pending replica that a node takes now, oldest first; returns the events to
    /// emit (a pending replica's reason only when it changed).
    pub(super) fn schedule_pending(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        let pending: Vec<Arc<Pod>> = self
            .pods
            .iter()
            .filter(|pod| {
                let state = lock(&pod.state);
                state.node.is_none() && !state.terminating
            })
            .cloned()
            .collect();
        for pod in pending {
            let placed = place(&self.node_views(), &pod.template.scheduling);
            let mut state = lock(&pod.state);
            match placed {
                Ok(node) => {
                    state.node = Some(node.clone());
                    state.pending = None;
                    pod.bound.notify_one();
                    events.push(Event::PodScheduled {
                        pod: pod.name.clone(),
                        node,
                    });
                }
                Err(reason) if state.pending.as_ref() != Some(&reason) => {
                    state.pending = Some(reason.clone());
                    events.push(Event::PodPending {
                        pod: pod.name.clone(),
                        reason,
                    });
                }
                Err(_) => {}
            }
        }
        events
    }

    fn node_index(&self, node: &str) -> Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.name == node)
            .ok_or_else(|| {
                let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
                PlatformError::Other(format!(
                    "no node `{node}`: the nodes are {}",
                    names.join(", ")
                ))
            })
    }
}

impl Supervisor {
    /// Binds what can be bound now and says so.
    pub(super) fn reschedule(&self) {
        let events = lock(&self.shared.state).schedule_pending();
        events
            .into_iter()
            .for_each(|event| self.shared.events.emit(event));
    }

    pub fn node_names(&self) -> Vec<String> {
        let state = lock(&self.shared.state);
        state.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// `kubectl cordon`: the scheduler binds nothing more to `node`.
    pub fn cordon(&self, node: &str) -> Result<()> {
        self.set_unschedulable(node, true)
    }

    /// `kubectl uncordon`: `node` takes replicas again, pending ones first.
    pub fn uncordon(&self, node: &str) -> Result<()> {
        self.set_unschedulable(node, false)?;
        self.reschedule();
        Ok(())
    }

    fn set_unschedulable(&self, node: &str, unschedulable: bool) -> Result<()> {
        let changed = {
            let mut state = lock(&self.shared.state);
            let index = state.node_index(node)?;
            let entry = &mut state.nodes[index];
            std::mem::replace(&mut entry.unschedulable, unschedulable) != unschedulable
        };
        if changed {
            let node = node.to_owned();
            self.shared.events.emit(if unschedulable {
                Event::NodeCordoned { node }
            } else {
                Event::NodeReturned { node }
            });
        }
        Ok(())
    }

    /// Replicas bound to `node`: `(not terminating, terminating)`, by name.
    pub fn pods_on(&self, node: &str) -> Result<(Vec<String>, Vec<String>)> {
        let state = lock(&self.shared.state);
        state.node_index(node)?;
        let (mut active, mut leaving) = (Vec::new(), Vec::new());
        for pod in &state.pods {
            let pod_state = lock(&pod.state);
            if pod_state.node.as_deref() == Some(node) {
                let list = if pod_state.terminating {
                    &mut leaving
                } else {
                    &mut active
                };
                list.push(pod.name.clone());
            }
        }
        Ok((active, leaving))
    }

    /// The eviction API: evicts `pod` unless `budget` refuses. An evicted replica terminates the
    /// graceful way (preStop, SIGTERM, the grace period) and its version gets a new one at once,
    /// pending until a node takes it. Checked and done under one lock, so two drains at once
    /// cannot both take the last allowed disruption.
    pub fn evict(&self, pod: &str, budget: Option<DisruptionBudget>) -> Result<(), EvictError> {
        let (evicted, started, scheduled) = {
            let mut state = lock(&self.shared.state);
            let Some(target) = state
                .pods
                .iter()
                .find(|p| p.name == pod && !p.is_terminating())
                .cloned()
            else {
                return Err(EvictError::Gone);
            };
            let healthy = state.pods.iter().filter(|p| p.is_ready()).count() as u32;
            let expected = state.versions.iter().map(|v| v.desired).sum();
            eviction::allow(budget, target.is_ready(), healthy, expected)
                .map_err(EvictError::Refused)?;
            // Terminating now, under the lock: the next check sees one healthy pod fewer.
            lock(&target.state).terminating = true;
            let index = state
                .versions
                .iter()
                .position(|v| v.name == target.version)
                .expect("a pod's version is known");
            // The eviction stands even if no replacement can be made now (no free port): the
            // next scale or eviction tries again.
            let started = match reconcile(&mut state, index) {
                Ok(Changes { started, .. }) => started,
                Err(err) => {
                    tracing::warn!("no replacement for {pod}: {err}");
                    Vec::new()
                }
            };
            (target, started, state.schedule_pending())
        };
        let node = lock(&evicted.state).node.clone().unwrap_or_default();
        self.shared.events.emit(Event::PodEvicted {
            pod: evicted.name.clone(),
            node,
        });
        // Marked terminating above; this runs its termination and says so.
        self.stop_marked(&evicted);
        self.start_and_stop(started, &[], scheduled);
        Ok(())
    }

    /// Every node with its replicas, for `zdd status`.
    pub fn node_statuses(&self) -> Vec<NodeStatus> {
        let state = lock(&self.shared.state);
        state
            .nodes
            .iter()
            .map(|node| NodeStatus {
                name: node.name.clone(),
                unschedulable: node.unschedulable,
                pods: state
                    .pods
                    .iter()
                    .filter(|pod| lock(&pod.state).node.as_deref() == Some(node.name.as_str()))
                    .map(|pod| pod.name.clone())
                    .collect(),
            })
            .collect()
    }

    /// `pod: reason` of every pending replica of `version`.
    pub fn pending_reasons(&self, version: &str) -> Vec<String> {
        let state = lock(&self.shared.state);
        state
            .pods
            .iter()
            .filter(|pod| pod.version == version)
            .filter_map(|pod| {
                let reason = lock(&pod.state).pending.clone()?;
                Some(format!("{} pending: {reason}", pod.name))
            })
            .collect()
    }
}

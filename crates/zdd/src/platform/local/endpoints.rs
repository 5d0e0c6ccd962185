//! The endpoint controller's part: publishes the ready replicas of each version to the router,
//! `propagation_delay` after the change happened.
//!
//! The delay is what makes the local platform honest: in a cluster, a pod that starts terminating
//! gets SIGTERM while kube-proxy and the ingress still send it traffic for a while. Here too, a
//! replica that starts terminating leaves the router only after the delay, so an app that exits at
//! once on SIGTERM (and has no preStop sleep) drops requests, exactly as it would in Kubernetes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use zdd_router::Endpoint;

use super::data_plane::LocalDataPlane;
use super::supervisor::Supervisor;
use crate::events::{Event, EventLog};

/// Starts the controller: one task watches the supervisor, another publishes each change after
/// `delay`, in order.
pub fn spawn_controller(
    supervisor: Supervisor,
    data: Arc<Mutex<LocalDataPlane>>,
    delay: Duration,
    events: EventLog,
) -> Vec<JoinHandle<()>> {
    let (due_tx, mut due_rx) =
        mpsc::unbounded_channel::<(Instant, BTreeMap<String, Vec<Endpoint>>)>();
    let watcher = tokio::spawn(async move {
        let mut changes = supervisor.subscribe();
        let mut last = BTreeMap::new();
        loop {
            let current = supervisor.ready_endpoints();
            if current != last {
                if due_tx
                    .send((Instant::now() + delay, current.clone()))
                    .is_err()
                {
                    return;
                }
                last = current;
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    });
    let publisher = tokio::spawn(async move {
        while let Some((due, snapshot)) = due_rx.recv().await {
            tokio::time::sleep_until(due).await;
            let mut data = data.lock().await;
            let changed: Vec<Event> = snapshot
                .iter()
                .filter(|(version, endpoints)| data.endpoints.get(*version) != Some(*endpoints))
                .map(|(version, endpoints)| Event::EndpointsPublished {
                    version: version.clone(),
                    pods: endpoints.iter().map(|e| e.pod.clone()).collect(),
                })
                .collect();
            data.endpoints = snapshot;
            match data.apply().await {
                // Emitted once the router serves them: the event is the data plane's truth.
                Ok(()) => changed.into_iter().for_each(|event| events.emit(event)),
                Err(err) => {
                    // The next change retries; the engine checks the data plane itself anyway.
                    tracing::warn!("publishing endpoints failed: {err}");
                    events.emit(Event::EndpointsNotApplied {
                        error: err.to_string(),
                    });
                }
            }
        }
    });
    vec![watcher, publisher]
}

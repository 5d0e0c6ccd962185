//! What the cluster's objects say about zdd's versions: Deployments and Pods mapped to
//! [`VersionStatus`] and [`PodStatus`], a Service's ready endpoints across its EndpointSlices, and
//! the Deployment condition that says its progress deadline passed.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

use crate::model::{PodStatus, VersionStatus};

/// The replica counts of `version` as its Deployment reports them.
pub fn version_status(version: &str, deployment: &Deployment) -> VersionStatus {
    let status = deployment.status.clone().unwrap_or_default();
    let count = |n: Option<i32>| n.unwrap_or(0).max(0) as u32;
    let terminating = count(status.terminating_replicas);
    VersionStatus {
        name: version.to_string(),
        desired: count(deployment.spec.as_ref().and_then(|s| s.replicas)),
        ready: count(status.available_replicas),
        running: count(status.replicas) + terminating,
        terminating,
    }
}

/// The Deployment's `Progressing` condition says the progress deadline passed.
pub fn progress_deadline_exceeded(deployment: &Deployment) -> Option<String> {
    let conditions = deployment.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
        .map(|c| c.message.clone().unwrap_or_default())
}

pub fn pod_status(pod: &Pod) -> PodStatus {
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let restarts = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count.max(0) as u32).sum())
        .unwrap_or(0);
    // A pod no node takes says why in its PodScheduled condition (the FailedScheduling message).
    let pending = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        })
        .map(|c| c.message.clone().unwrap_or_default());
    PodStatus {
        name: pod.name_any(),
        version: pod.labels().get("version").cloned().unwrap_or_default(),
        pid: None,
        port: None,
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        restarts,
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        pending,
    }
}

/// Ready endpoints (by pod) across a Service's EndpointSlices. `ready: null` means ready.
pub fn ready_endpoints(slices: &[Arc<EndpointSlice>]) -> usize {
    let pods: BTreeSet<String> = slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .map(|e| {
            e.target_ref
                .as_ref()
                .and_then(|r| r.name.clone())
                .unwrap_or_else(|| e.addresses.join(","))
        })
        .collect();
    pods.len()
}

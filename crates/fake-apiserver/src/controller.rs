//! The simulated control plane: a deployment controller (pods per Deployment, ready after a delay,
//! terminating for a while before they go), the Deployment `.status` it reports, and an
//! EndpointSlice controller (one slice per Service with a selector).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Shared;
use crate::store::{
    DEPLOYMENTS, ENDPOINT_SLICES, ObjectKey, PODS, SERVICES, Selector, Store, label_of, now_rfc3339,
};

/// What the controller remembers about a pod that the API objects do not say (when it changed).
struct PodClock {
    created: Instant,
    ready_since: Option<Instant>,
    terminating_since: Option<Instant>,
}

struct Progress {
    generation: i64,
    ready: usize,
    since: Instant,
}

#[derive(Default)]
pub(crate) struct ControllerState {
    pods: HashMap<(String, String), PodClock>,
    progress: HashMap<(String, String), Progress>,
    next_pod: u64,
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut state = ControllerState::default();
    let mut tick = tokio::time::interval(shared.config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let rv = {
            let mut store = shared.store.lock().expect("store poisoned");
            let before = store.resource_version();
            let now = Instant::now();
            reconcile(&shared, &mut store, &mut state, now);
            shared.record_view(&store, now);
            (store.resource_version() != before).then(|| store.resource_version())
        };
        if let Some(rv) = rv {
            shared.changed.send_replace(rv);
        }
    }
}

fn key(kind: crate::store::Kind, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

fn ns_name(object: &Value) -> (String, String) {
    (
        object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn owner_of(pod: &Value) -> Option<String> {
    pod["metadata"]["ownerReferences"][0]["name"]
        .as_str()
        .map(String::from)
}

fn is_terminating(pod: &Value) -> bool {
    !pod["metadata"]["deletionTimestamp"].is_null()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn set_ready(pod: &mut Value, ready: bool) {
    let status = if ready { "True" } else { "False" };
    pod["status"]["conditions"] = json!([
        {"type": "Ready", "status": status},
        {"type": "ContainersReady", "status": status},
    ]);
}

fn reconcile(shared: &Shared, store: &mut Store, state: &mut ControllerState, now: Instant) {
    let deployments = store.list(DEPLOYMENTS, None);
    let mut deployment_names: BTreeMap<(String, String), Value> = BTreeMap::new();
    for d in &deployments {
        deployment_names.insert(ns_name(d), d.clone());
    }

    // Pods: create, ready, terminate, delete.
    for ((namespace, name), deployment) in &deployment_names {
        let desired = deployment["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
        let mut live: Vec<Value> = store
            .list(PODS, Some(namespace))
            .into_iter()
            .filter(|p| owner_of(p).as_deref() == Some(name.as_str()) && !is_terminating(p))
            .collect();
        while live.len() < desired {
            let pod = new_pod(store, state, deployment, now);
            live.push(pod);
        }
        if live.len() > desired {
            // Like the ReplicaSet controller: unready pods go first, then the youngest.
            live.sort_by_key(|p| {
                let clock = state.pods.get(&ns_name(p));
                (is_ready(p), std::cmp::Reverse(clock.map(|c| c.created)))
            });
            for pod in live.iter().take(live.len() - desired) {
                start_termination(store, state, pod.clone(), now);
            }
        }
    }

    let never_ready = shared
        .faults
        .lock()
        .expect("faults poisoned")
        .never_ready
        .clone();
    for pod in store.list(PODS, None) {
        let id = ns_name(&pod);
        let owner_exists = owner_of(&pod)
            .is_some_and(|owner| deployment_names.contains_key(&(id.0.clone(), owner)));
        if !is_terminating(&pod) && !owner_exists {
            // Garbage collection of a deleted Deployment's pods.
            start_termination(store, state, pod, now);
            continue;
        }
        let clock = state.pods.entry(id.clone()).or_insert(PodClock {
            created: now,
            ready_since: None,
            terminating_since: None,
        });
        if let Some(since) = clock.terminating_since {
            if now.duration_since(since) >= shared.config.pod_terminate_after {
                store.delete(&key(PODS, &id.0, &id.1));
                state.pods.remove(&id);
            }
            continue;
        }
        let version = label_of(&pod, "version").unwrap_or_default();
        if clock.ready_since.is_none()
            && !never_ready.contains(&version)
            && now.duration_since(clock.created) >= shared.config.pod_ready_after
        {
            clock.ready_since = Some(now);
            let mut pod = pod;
            set_ready(&mut pod, true);
            store.put(key(PODS, &id.0, &id.1), pod);
        }
    }
    state
        .pods
        .retain(|id, _| store.get(&key(PODS, &id.0, &id.1)).is_some());

    for ((namespace, name), deployment) in &deployment_names {
        update_deployment_status(shared, store, state, namespace, name, deployment, now);
    }
    state
        .progress
        .retain(|id, _| deployment_names.contains_key(id));
    update_endpoint_slices(shared, store, state, now);
}

fn new_pod(
    store: &mut Store,
    state: &mut ControllerState,
    deployment: &Value,
    now: Instant,
) -> Value {
    let (namespace, deployment_name) = ns_name(deployment);
    state.next_pod += 1;
    let hash = template_hash(deployment);
    let name = format!("{deployment_name}-{hash}-{:05x}", state.next_pod);
    let mut labels = deployment["spec"]["template"]["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels["pod-template-hash"] = json!(hash);
    let mut pod = json!({
        "metadata": {
            "name": name,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment_name,
                "uid": deployment["metadata"]["uid"],
                "controller": true,
            }],
        },
        "spec": deployment["spec"]["template"]["spec"],
        "status": {
            "phase": "Running",
            "podIP": format!("10.244.{}.{}", (state.next_pod / 250) % 250, state.next_pod % 250 + 2),
        },
    });
    set_ready(&mut pod, false);
    state.pods.insert(
        (namespace.clone(), name.clone()),
        PodClock {
            created: now,
            ready_since: None,
            terminating_since: None,
        },
    );
    store.put(key(PODS, &namespace, &name), pod)
}

/// A stable short hash of the pod template, like `pod-template-hash`.
fn template_hash(deployment: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    deployment["spec"]["template"].to_string().hash(&mut hasher);
    format!("{:08x}", hasher.finish() as u32)
}

fn start_termination(store: &mut Store, state: &mut ControllerState, mut pod: Value, now: Instant) {
    let id = ns_name(&pod);
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap_or(30);
    pod["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
    pod["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    let clock = state.pods.entry(id.clone()).or_insert(PodClock {
        created: now,
        ready_since: None,
        terminating_since: None,
    });
    clock.terminating_since = Some(now);
    store.put(key(PODS, &id.0, &id.1), pod);
}

fn update_deployment_status(
    shared: &Shared,
    store: &mut Store,
    state: &mut ControllerState,
    namespace: &str,
    name: &str,
    deployment: &Value,
    now: Instant,
) {
    let desired = deployment["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
    let min_ready =
        Duration::from_secs(deployment["spec"]["minReadySeconds"].as_u64().unwrap_or(0));
    let mut deadline = Duration::from_secs(
        deployment["spec"]["progressDeadlineSeconds"]
            .as_u64()
            .unwrap_or(600),
    );
    if let Some(cap) = shared.config.progress_deadline_cap {
        deadline = deadline.min(cap);
    }
    let generation = deployment["metadata"]["generation"].as_i64().unwrap_or(1);
    let pods: Vec<Value> = store
        .list(PODS, Some(namespace))
        .into_iter()
        .filter(|p| owner_of(p).as_deref() == Some(name))
        .collect();
    let terminating = pods.iter().filter(|p| is_terminating(p)).count();
    let live: Vec<&Value> = pods.iter().filter(|p| !is_terminating(p)).collect();
    let ready: Vec<&Value> = live.iter().copied().filter(|p| is_ready(p)).collect();
    let available = ready
        .iter()
        .filter(|p| {
            state
                .pods
                .get(&ns_name(p))
                .and_then(|c| c.ready_since)
                .is_some_and(|since| now.duration_since(since) >= min_ready)
        })
        .count();

    let id = (namespace.to_string(), name.to_string());
    let progress = state.progress.entry(id).or_insert(Progress {
        generation,
        ready: ready.len(),
        since: now,
    });
    if progress.generation != generation || ready.len() > progress.ready {
        *progress = Progress {
            generation,
            ready: ready.len(),
            since: now,
        };
    }
    progress.ready = ready.len();
    let complete = available >= desired && live.len() == desired;
    let (progressing_status, progressing_reason) = if complete {
        ("True", "NewReplicaSetAvailable")
    } else if now.duration_since(progress.since) > deadline {
        ("False", "ProgressDeadlineExceeded")
    } else {
        ("True", "ReplicaSetUpdated")
    };
    let (available_status, available_reason) = if available >= desired {
        ("True", "MinimumReplicasAvailable")
    } else {
        ("False", "MinimumReplicasUnavailable")
    };
    let status = json!({
        "observedGeneration": generation,
        "replicas": live.len(),
        "updatedReplicas": live.len(),
        "readyReplicas": ready.len(),
        "availableReplicas": available,
        "unavailableReplicas": desired.saturating_sub(available),
        "terminatingReplicas": terminating,
        "conditions": [
            {"type": "Available", "status": available_status, "reason": available_reason,
             "message": format!("{available} of {desired} replicas available")},
            {"type": "Progressing", "status": progressing_status, "reason": progressing_reason,
             "message": format!("Deployment \"{name}\": {} of {desired} ready", ready.len())},
        ],
    });
    if deployment["status"] != status {
        let mut updated = deployment.clone();
        updated["status"] = status;
        store.put(key(DEPLOYMENTS, namespace, name), updated);
    }
}

fn update_endpoint_slices(
    shared: &Shared,
    store: &mut Store,
    state: &ControllerState,
    now: Instant,
) {
    let services = store.list(SERVICES, None);
    let mut wanted = Vec::new();
    for service in &services {
        let (namespace, name) = ns_name(service);
        let Some(selector) = service["spec"]["selector"].as_object() else {
            continue;
        };
        if selector.is_empty() {
            continue;
        }
        let selector_text: Vec<String> = selector
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        let selector = Selector::parse(&selector_text.join(","));
        let mut pods: Vec<Value> = store
            .list(PODS, Some(&namespace))
            .into_iter()
            .filter(|p| selector.matches(|k| label_of(p, k)))
            .collect();
        pods.sort_by_key(ns_name);
        let endpoints: Vec<Value> = pods
            .iter()
            .map(|p| {
                let terminating = is_terminating(p);
                let published = state
                    .pods
                    .get(&ns_name(p))
                    .and_then(|c| c.ready_since)
                    .is_some_and(|since| now.duration_since(since) >= shared.config.endpoints_lag);
                let ready = is_ready(p) && published;
                json!({
                    "addresses": [p["status"]["podIP"]],
                    "conditions": {"ready": ready && !terminating, "serving": ready, "terminating": terminating},
                    "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": namespace},
                })
            })
            .collect();
        let ports: Vec<Value> = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|port| {
                let target = port["targetPort"]
                    .as_i64()
                    .or_else(|| port["port"].as_i64())
                    .unwrap_or(80);
                json!({"name": port["name"].as_str().unwrap_or(""), "port": target, "protocol": "TCP"})
            })
            .collect();
        let slice_name = format!("{name}-fake");
        wanted.push((namespace.clone(), slice_name.clone()));
        let slice_key = key(ENDPOINT_SLICES, &namespace, &slice_name);
        let existing = store.get(&slice_key).cloned();
        let unchanged = existing
            .as_ref()
            .is_some_and(|e| e["endpoints"] == json!(endpoints) && e["ports"] == json!(ports));
        if !unchanged {
            let mut slice = existing.unwrap_or_else(|| {
                json!({"metadata": {"labels": {
                    "kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                }}})
            });
            slice["addressType"] = json!("IPv4");
            slice["endpoints"] = json!(endpoints);
            slice["ports"] = json!(ports);
            store.put(slice_key, slice);
        }
    }
    for slice in store.list(ENDPOINT_SLICES, None) {
        let id = ns_name(&slice);
        if !wanted.contains(&id) {
            store.delete(&key(ENDPOINT_SLICES, &id.0, &id.1));
        }
    }
}

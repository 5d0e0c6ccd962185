//! A stand-in for kube-proxy and the ingress, so that traffic checks have something to reach:
//! `GET /<namespace>/<name>/...` is routed the way the cluster's objects say, and answered on
//! behalf of the chosen pod (the pods are not processes here).
//!
//! - a TraefikService or HTTPRoute called `<name>` splits by weight (smooth weighted round robin)
//!   between the Services it names;
//! - a Service is served by the ready endpoints of its EndpointSlice, round robin;
//! - no ready endpoint, or every weight 0: 503, as Traefik answers.
//!
//! Answers carry `X-Version` (the pod's `version` label) and `X-Zdd-Pod`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::store::{
    ENDPOINT_SLICES, HTTP_ROUTES, ObjectKey, PODS, Store, TRAEFIK_SERVICES, label_of,
};
use crate::{DataPlaneAnswer, Shared};

#[derive(Default)]
pub(crate) struct Balancer {
    /// Round-robin position per Service.
    next_endpoint: HashMap<(String, String), usize>,
    /// Current weights of the smooth weighted round robin, per route and backend.
    current: HashMap<(String, String, String), i64>,
}

pub(crate) fn router(shared: Arc<Shared>, balancer: Arc<Mutex<Balancer>>) -> Router {
    Router::new().fallback(serve).with_state((shared, balancer))
}

fn key(kind: crate::store::Kind, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

/// Weighted backends of a route object, when `<name>` is one.
fn route_backends(store: &Store, namespace: &str, name: &str) -> Option<Vec<(String, i64)>> {
    let list = if let Some(ts) = store.get(&key(TRAEFIK_SERVICES, namespace, name)) {
        ts["spec"]["weighted"]["services"].as_array().cloned()
    } else if let Some(route) = store.get(&key(HTTP_ROUTES, namespace, name)) {
        route["spec"]["rules"][0]["backendRefs"].as_array().cloned()
    } else {
        None
    }?;
    Some(
        list.iter()
            .filter_map(|b| {
                Some((
                    b["name"].as_str()?.to_string(),
                    b["weight"].as_i64().unwrap_or(1),
                ))
            })
            .collect(),
    )
}

/// The pod that serves the next request to Service `service`, if any is ready.
fn pick_endpoint(
    store: &Store,
    balancer: &mut Balancer,
    namespace: &str,
    service: &str,
) -> Option<Value> {
    let slice = store.get(&key(ENDPOINT_SLICES, namespace, &format!("{service}-fake")))?;
    let ready: Vec<String> = slice["endpoints"]
        .as_array()?
        .iter()
        .filter(|e| e["conditions"]["ready"] == Value::Bool(true))
        .filter_map(|e| e["targetRef"]["name"].as_str().map(String::from))
        .collect();
    if ready.is_empty() {
        return None;
    }
    let position = balancer
        .next_endpoint
        .entry((namespace.to_string(), service.to_string()))
        .or_default();
    let pod = &ready[*position % ready.len()];
    *position = position.wrapping_add(1);
    store.get(&key(PODS, namespace, pod)).cloned()
}

async fn serve(
    State((shared, balancer)): State<(Arc<Shared>, Arc<Mutex<Balancer>>)>,
    uri: Uri,
) -> Response {
    let route = uri.path().to_string();
    let (status, version, response) = answer(&shared, &balancer, &route);
    shared
        .answers
        .lock()
        .expect("answers poisoned")
        .push(DataPlaneAnswer {
            seq: shared.next_seq(),
            route,
            status: status.as_u16(),
            version,
        });
    response
}

fn answer(
    shared: &Shared,
    balancer: &Mutex<Balancer>,
    path: &str,
) -> (StatusCode, Option<String>, Response) {
    let fail = |status: StatusCode, text: String| (status, None, (status, text).into_response());
    let mut segments = path.trim_start_matches('/').splitn(3, '/');
    let (Some(namespace), Some(name)) = (segments.next(), segments.next()) else {
        return fail(
            StatusCode::NOT_FOUND,
            "use /<namespace>/<service or route>/\n".into(),
        );
    };
    let store = shared.store.lock().expect("store poisoned");
    let mut balancer = balancer.lock().expect("balancer poisoned");
    let service = match route_backends(&store, namespace, name) {
        Some(backends) => {
            // Smooth weighted round robin (nginx): even spread, exact ratios over a cycle.
            let total: i64 = backends.iter().map(|(_, w)| (*w).max(0)).sum();
            if total == 0 {
                return fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no service with a weight\n".into(),
                );
            }
            let mut best: Option<(String, i64)> = None;
            for (backend, weight) in &backends {
                let current = balancer
                    .current
                    .entry((namespace.to_string(), name.to_string(), backend.clone()))
                    .or_default();
                *current += (*weight).max(0);
                if best.as_ref().is_none_or(|(_, c)| *current > *c) {
                    best = Some((backend.clone(), *current));
                }
            }
            let (chosen, _) = best.expect("at least one backend");
            *balancer
                .current
                .get_mut(&(namespace.to_string(), name.to_string(), chosen.clone()))
                .expect("entry made above") -= total;
            chosen
        }
        None => name.to_string(),
    };
    let Some(pod) = pick_endpoint(&store, &mut balancer, namespace, &service) else {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no ready endpoint for service {service}\n"),
        );
    };
    let pod_name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let version = label_of(&pod, "version").unwrap_or_default();
    let failing = shared
        .faults
        .lock()
        .expect("faults poisoned")
        .failing_versions
        .contains(&version);
    if failing {
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        let response = (
            status,
            [
                ("x-version", version.clone()),
                ("x-zdd-pod", pod_name.clone()),
            ],
            format!("bad release. Pod: {pod_name}, version: {version}\n"),
        )
            .into_response();
        return (status, Some(version), response);
    }
    let response = (
        StatusCode::OK,
        [
            ("x-version", version.clone()),
            ("x-zdd-pod", pod_name.clone()),
        ],
        format!("OK. Pod: {pod_name}, version: {version}\n"),
    )
        .into_response();
    (StatusCode::OK, Some(version), response)
}

//! A stand-in for kube-proxy and the ingress, so that traffic checks have something to reach:
//! `GET /<namespace>/<name>/...` is routed the way the cluster's objects say, and answered on
//! behalf of the chosen pod (the pods are not processes here).
//!
//! - header routes of an IngressRoute or HTTPRoute called `<name>` go first: a request they match
//!   goes to their Service (see `header_routes.rs`);
//! - a TraefikService or HTTPRoute called `<name>` splits by weight (smooth weighted round robin)
//!   between the Services it names;
//! - a Service is served by the ready endpoints of its EndpointSlice, round robin;
//! - no ready endpoint, or every weight 0: 503, as Traefik answers;
//! - with `data_plane_lag`, it routes as the objects were that long ago; a pod that is gone by
//!   then answers 502 (what a proxy reports for a refused connection). A terminating pod still
//!   answers: preStop and the drain delay keep it serving.
//!
//! Answers carry `X-Version` (the pod's `version` label) and `X-Zdd-Pod`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::header_routes::{self, HeaderRoute};
use crate::store::{
    ENDPOINT_SLICES, HTTP_ROUTES, INGRESS_ROUTES, ObjectKey, PODS, Store, TRAEFIK_SERVICES,
    label_of,
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

/// What the data plane knows: the routes' weights and the Services' ready endpoints. With a lag,
/// it answers from a view taken that long ago, like kube-proxy and an ingress that have not caught
/// up yet.
#[derive(Default)]
pub(crate) struct DataView {
    /// `(namespace, name)` of a TraefikService or HTTPRoute → `(Service, weight)`.
    routes: HashMap<(String, String), Vec<(String, i64)>>,
    /// `(namespace, name)` of an IngressRoute or HTTPRoute → its header routes, in order.
    header_routes: HashMap<(String, String), Vec<HeaderRoute>>,
    /// `(namespace, Service)` → ready endpoints (pod names).
    endpoints: HashMap<(String, String), Vec<String>>,
}

impl DataView {
    pub(crate) fn of(store: &Store) -> DataView {
        let mut view = DataView::default();
        let backends = |list: Option<&Vec<Value>>| -> Vec<(String, i64)> {
            list.into_iter()
                .flatten()
                .filter_map(|b| {
                    Some((
                        b["name"].as_str()?.to_string(),
                        b["weight"].as_i64().unwrap_or(1),
                    ))
                })
                .collect()
        };
        // A TraefikService wins over an HTTPRoute of the same name (inserted last).
        for route in store.list(HTTP_ROUTES, None) {
            let list = route["spec"]["rules"][0]["backendRefs"].as_array();
            view.routes.insert(ns_name(&route), backends(list));
            let header_routes = header_routes::of_http_route(&route);
            view.header_routes.insert(ns_name(&route), header_routes);
        }
        for route in store.list(INGRESS_ROUTES, None) {
            let header_routes = header_routes::of_ingress_route(&route);
            view.header_routes.insert(ns_name(&route), header_routes);
        }
        for route in store.list(TRAEFIK_SERVICES, None) {
            let list = route["spec"]["weighted"]["services"].as_array();
            view.routes.insert(ns_name(&route), backends(list));
        }
        for slice in store.list(ENDPOINT_SLICES, None) {
            let (namespace, _) = ns_name(&slice);
            let Some(service) = label_of(&slice, "kubernetes.io/service-name") else {
                continue;
            };
            let ready = slice["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["conditions"]["ready"] == Value::Bool(true))
                .filter_map(|e| e["targetRef"]["name"].as_str().map(String::from))
                .collect();
            view.endpoints.insert((namespace, service), ready);
        }
        view
    }
}

fn ns_name(object: &Value) -> (String, String) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        text(&object["metadata"]["namespace"]),
        text(&object["metadata"]["name"]),
    )
}

/// The pod that serves the next request to Service `service`, if the view has a ready one.
fn pick_endpoint(
    view: &DataView,
    balancer: &mut Balancer,
    namespace: &str,
    service: &str,
) -> Option<String> {
    let id = (namespace.to_string(), service.to_string());
    let ready = view.endpoints.get(&id).filter(|r| !r.is_empty())?;
    let position = balancer.next_endpoint.entry(id).or_default();
    let pod = ready[*position % ready.len()].clone();
    *position = position.wrapping_add(1);
    Some(pod)
}

async fn serve(
    State((shared, balancer)): State<(Arc<Shared>, Arc<Mutex<Balancer>>)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let route = uri.path().to_string();
    let (status, version, response) = answer(&shared, &balancer, &route, &headers);
    shared
        .answers
        .lock()
        .expect("answers poisoned")
        .push(DataPlaneAnswer {
            seq: shared.next_seq(),
            at: shared.started.elapsed(),
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
    headers: &HeaderMap,
) -> (StatusCode, Option<String>, Response) {
    let fail = |status: StatusCode, text: String| (status, None, (status, text).into_response());
    let mut segments = path.trim_start_matches('/').splitn(3, '/');
    let (Some(namespace), Some(name)) = (segments.next(), segments.next()) else {
        return fail(
            StatusCode::NOT_FOUND,
            "use /<namespace>/<service or route>/\n".into(),
        );
    };
    let lag = shared.config.data_plane_lag;
    let store = shared.store.lock().expect("store poisoned");
    let view = if lag.is_zero() {
        Arc::new(DataView::of(&store))
    } else {
        shared
            .view_at(std::time::Instant::now() - lag)
            .unwrap_or_else(|| Arc::new(DataView::of(&store)))
    };
    let mut balancer = balancer.lock().expect("balancer poisoned");
    let id = (namespace.to_string(), name.to_string());
    let header_route = view
        .header_routes
        .get(&id)
        .and_then(|routes| header_routes::route(routes, headers));
    let routes = view.routes.get(&id);
    let service = match (header_route, routes.cloned()) {
        (Some(service), _) => service.to_owned(),
        (None, Some(backends)) => {
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
        (None, None) => name.to_string(),
    };
    let Some(pod_name) = pick_endpoint(&view, &mut balancer, namespace, &service) else {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no ready endpoint for service {service}\n"),
        );
    };
    let Some(pod) = store.get(&key(PODS, namespace, &pod_name)) else {
        // A lagging data plane sent the request to a pod that no longer exists.
        return fail(
            StatusCode::BAD_GATEWAY,
            format!("pod {pod_name} is gone (connection refused)\n"),
        );
    };
    let version = label_of(pod, "version").unwrap_or_default();
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

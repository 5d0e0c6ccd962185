//! How the main route (Service names and weights) and the managed routes (header routes, a
//! mirror) are expressed in the cluster: one [`KubeRouter`] per `--router`, chosen by
//! [`for_kind`].

mod gateway_api;
mod service;
mod traefik;

use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::KubernetesConfig;
use super::objects::{self, Backends};
use crate::model::Routing;
use crate::platform::{Result, RouterKind};

/// How the routes are expressed in the cluster.
pub trait KubeRouter: Sync {
    /// The objects that route as `routing` says (its main route and its managed routes), in apply
    /// order (none when the main Service alone routes); an error when this router cannot express
    /// it.
    fn objects(&self, config: &KubernetesConfig, routing: &Routing) -> Result<Vec<RouteObject>>;

    /// Objects `previous` needed and `routing` does not: deleted once `routing`'s are applied (so
    /// nothing routes to them any more).
    fn stale(
        &self,
        _config: &KubernetesConfig,
        _previous: &Routing,
        _routing: &Routing,
    ) -> Vec<StaleObject> {
        Vec::new()
    }

    /// For `zdd status`: the kind of the route object that keeps the backends, and where in it (a
    /// JSON pointer to the list); `None` when the cluster keeps no weights.
    fn backends_at(&self) -> Option<(&'static Crd, &'static str)>;
}

/// The router of `--router` (builtin is refused before: it runs only locally).
pub fn for_kind(kind: RouterKind) -> &'static dyn KubeRouter {
    match kind {
        RouterKind::Service | RouterKind::Builtin => &service::ServiceOnly,
        RouterKind::Traefik => &traefik::Traefik,
        RouterKind::GatewayApi => &gateway_api::GatewayApi,
    }
}

/// A custom resource a router applies. Each one's group, version, kind and plural are written
/// once, in its router's file.
pub struct Crd {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

impl Crd {
    /// `traefikservices.traefik.io`, as error messages name it.
    pub fn resource(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }

    pub fn api_resource(&self) -> ApiResource {
        let gvk = GroupVersionKind::gvk(self.group, self.version, self.kind);
        ApiResource::from_gvk_with_plural(&gvk, self.plural)
    }

    /// The main route's object of this kind, with its `spec`.
    fn object(&self, config: &KubernetesConfig, spec: Value) -> Value {
        self.named(config, &objects::route_name(&config.app), spec)
    }

    /// An object `name` of this kind, with the app's labels and `spec`.
    fn named(&self, config: &KubernetesConfig, name: &str, spec: Value) -> Value {
        json!({
            "apiVersion": format!("{}/{}", self.group, self.version),
            "kind": self.kind,
            "metadata": {
                "name": name,
                "labels": objects::labels(&config.app, None),
            },
            "spec": spec,
        })
    }
}

/// One object of the routes: its kind, its JSON, and the change the ledger records.
pub struct RouteObject {
    pub crd: &'static Crd,
    pub object: Value,
    pub change: String,
}

/// An object to delete: its kind and name, and the change the ledger records.
pub struct StaleObject {
    pub crd: &'static Crd,
    pub name: String,
    pub change: String,
}

/// The per-version Service a managed route sends to, as a backend reference.
fn version_ref(config: &KubernetesConfig, version: &str) -> Value {
    json!({"name": objects::version_service_name(&config.app, version), "port": config.service_port})
}

/// `: route testers → web-v2, mirror shadow 50% → web-v2`, or nothing without managed routes: for
/// the ledger.
fn managed_routes(config: &KubernetesConfig, routing: &Routing) -> String {
    let service = |version: &str| objects::version_service_name(&config.app, version);
    let mut parts: Vec<String> = routing
        .header_routes
        .iter()
        .map(|route| format!("route {} → {}", route.name, service(&route.version)))
        .collect();
    if let Some(mirror) = &routing.mirror {
        parts.push(format!(
            "mirror {} {}% → {}",
            mirror.name,
            mirror.percent,
            service(&mirror.version)
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join(", "))
    }
}

/// The backends as a TraefikService's `services` or an HTTPRoute's `backendRefs`.
fn backend_refs(config: &KubernetesConfig, backends: &Backends) -> Vec<Value> {
    backends
        .iter()
        .map(|(name, weight)| json!({"name": name, "port": config.service_port, "weight": weight}))
        .collect()
}

/// Reads the backends back from the list at `pointer` in a route object.
pub fn backends_in(object: &Value, pointer: &str) -> Backends {
    let list = object.pointer(pointer).and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter_map(|b| {
            let name = b["name"].as_str()?.to_string();
            let weight = b["weight"].as_u64().unwrap_or(1) as u32;
            Some((name, weight))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{TrafficPolicy, Weights};

    /// The backends read back from the first object of the route `main` on `kind`, and that object.
    fn routed(kind: RouterKind, main: &TrafficPolicy) -> Result<(Backends, Value)> {
        let router = for_kind(kind);
        let routing = Routing::main_only(main.clone());
        let objects = router.objects(&KubernetesConfig::new("web"), &routing)?;
        let (_, pointer) = router.backends_at().unwrap();
        let object = objects[0].object.clone();
        Ok((backends_in(&object, pointer), object))
    }

    #[test]
    fn weighted_objects_keep_backend_order_and_read_back() {
        let weights = Weights(vec![("v1".to_string(), 90), ("v2".to_string(), 10)]);
        let main = TrafficPolicy::Weighted(weights);
        let backends = Weights(vec![("web-v1".to_string(), 90), ("web-v2".to_string(), 10)]);
        let (read, ts) = routed(RouterKind::Traefik, &main).unwrap();
        assert_eq!(ts["spec"]["weighted"]["services"][1]["name"], "web-v2");
        assert_eq!(read, backends);
        let (read, route) = routed(RouterKind::GatewayApi, &main).unwrap();
        assert_eq!(route["spec"]["parentRefs"][0]["name"], "zdd-gateway");
        assert_eq!(read, backends);
        assert!(routed(RouterKind::Service, &main).is_err());
    }
}

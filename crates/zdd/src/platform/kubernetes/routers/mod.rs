//! How the main route's backends (Service names and weights) are expressed in the cluster: one
//! [`KubeRouter`] per `--router`, chosen by [`for_kind`].

mod gateway_api;
mod service;
mod traefik;

use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::KubernetesConfig;
use super::objects::{self, Backends};
use crate::model::TrafficPolicy;
use crate::platform::{Result, RouterKind};

/// How the main route's backends are expressed in the cluster.
pub trait KubeRouter: Sync {
    /// The objects that send the main route where `main` says, in apply order (none when the main
    /// Service alone routes); an error when this router cannot express it.
    fn objects(&self, config: &KubernetesConfig, main: &TrafficPolicy) -> Result<Vec<RouteObject>>;

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
        json!({
            "apiVersion": format!("{}/{}", self.group, self.version),
            "kind": self.kind,
            "metadata": {
                "name": objects::route_name(&config.app),
                "labels": objects::labels(&config.app, None),
            },
            "spec": spec,
        })
    }
}

/// One object of the main route: its kind, its JSON, and the change the ledger records.
pub struct RouteObject {
    pub crd: &'static Crd,
    pub object: Value,
    pub change: String,
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
    use crate::model::Weights;

    /// The backends read back from the first object of the route `main` on `kind`, and that object.
    fn routed(kind: RouterKind, main: &TrafficPolicy) -> Result<(Backends, Value)> {
        let router = for_kind(kind);
        let objects = router.objects(&KubernetesConfig::new("web"), main)?;
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

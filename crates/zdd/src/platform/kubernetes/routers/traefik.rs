//! `--router traefik`: a TraefikService `<app>` with `weighted` services, and the IngressRoute
//! that sends the entry point's traffic to it.

use serde_json::json;

use super::{Crd, KubeRouter, RouteObject, backend_refs};
use crate::model::TrafficPolicy;
use crate::platform::Result;
use crate::platform::kubernetes::{KubernetesConfig, objects};

const TRAEFIK_SERVICE: Crd = Crd {
    group: "traefik.io",
    version: "v1alpha1",
    kind: "TraefikService",
    plural: "traefikservices",
};

const INGRESS_ROUTE: Crd = Crd {
    group: "traefik.io",
    version: "v1alpha1",
    kind: "IngressRoute",
    plural: "ingressroutes",
};

pub struct Traefik;

impl KubeRouter for Traefik {
    fn objects(&self, config: &KubernetesConfig, main: &TrafficPolicy) -> Result<Vec<RouteObject>> {
        let backends = objects::backends(&config.app, main);
        let name = objects::route_name(&config.app);
        let services = json!({"weighted": {"services": backend_refs(config, &backends)}});
        let ingress = json!({
            "entryPoints": [config.traefik_entry_point],
            "routes": [{
                "match": "PathPrefix(`/`)",
                "kind": "Rule",
                "services": [{"name": name, "kind": TRAEFIK_SERVICE.kind}],
            }],
        });
        Ok(vec![
            RouteObject {
                crd: &TRAEFIK_SERVICE,
                object: TRAEFIK_SERVICE.object(config, services),
                change: format!("TraefikService {name} weights {backends}"),
            },
            RouteObject {
                crd: &INGRESS_ROUTE,
                object: INGRESS_ROUTE.object(config, ingress),
                change: format!("IngressRoute {name} applied"),
            },
        ])
    }

    fn backends_at(&self) -> Option<(&'static Crd, &'static str)> {
        Some((&TRAEFIK_SERVICE, "/spec/weighted/services"))
    }
}

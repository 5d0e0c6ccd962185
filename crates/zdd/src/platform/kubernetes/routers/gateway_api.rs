//! `--router gateway-api`: an HTTPRoute `<app>` attached to the configured Gateway, with weighted
//! `backendRefs`.

use serde_json::json;

use super::{Crd, KubeRouter, RouteObject, backend_refs};
use crate::model::TrafficPolicy;
use crate::platform::Result;
use crate::platform::kubernetes::{KubernetesConfig, objects};

const HTTP_ROUTE: Crd = Crd {
    group: "gateway.networking.k8s.io",
    version: "v1",
    kind: "HTTPRoute",
    plural: "httproutes",
};

pub struct GatewayApi;

impl KubeRouter for GatewayApi {
    fn objects(&self, config: &KubernetesConfig, main: &TrafficPolicy) -> Result<Vec<RouteObject>> {
        let backends = objects::backends(&config.app, main);
        let spec = json!({
            "parentRefs": [{"name": config.gateway}],
            "rules": [{"backendRefs": backend_refs(config, &backends)}],
        });
        Ok(vec![RouteObject {
            crd: &HTTP_ROUTE,
            object: HTTP_ROUTE.object(config, spec),
            change: format!(
                "HTTPRoute {} weights {backends}",
                objects::route_name(&config.app)
            ),
        }])
    }

    fn backends_at(&self) -> Option<(&'static Crd, &'static str)> {
        Some((&HTTP_ROUTE, "/spec/rules/0/backendRefs"))
    }
}

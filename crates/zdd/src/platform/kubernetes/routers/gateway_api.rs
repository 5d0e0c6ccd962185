//! `--router gateway-api`: an HTTPRoute `<app>` attached to the configured Gateway, with weighted
//! `backendRefs` in its first rule. A header route is a rule with header matches (a cookie: a
//! regular expression on the `Cookie` header) to its version's Service: the Gateway API gives
//! precedence to the rule with the most header matches, then to the first in the list. A mirror
//! is a `RequestMirror` filter with `percent` (GEP-3171) on the main rule, or on a rule of the
//! mirror's own matches that splits as the main rule does.

use serde_json::{Value, json};

use super::{Crd, KubeRouter, RouteObject, backend_refs, managed_routes, version_ref};
use crate::model::Routing;
use crate::platform::Result;
use crate::platform::kubernetes::{KubeError, KubernetesConfig, objects};
use crate::platform::matches::{gateway_match, router_matcher};

const HTTP_ROUTE: Crd = Crd {
    group: "gateway.networking.k8s.io",
    version: "v1",
    kind: "HTTPRoute",
    plural: "httproutes",
};

pub struct GatewayApi;

fn matches(route: &str, matches: &[crate::model::RequestMatch]) -> Result<Value> {
    let matched = gateway_match(&router_matcher(matches)).map_err(|reason| {
        KubeError::RouteNotExpressible {
            route: route.to_owned(),
            reason,
        }
    })?;
    Ok(json!([matched]))
}

impl KubeRouter for GatewayApi {
    fn objects(&self, config: &KubernetesConfig, routing: &Routing) -> Result<Vec<RouteObject>> {
        let backends = objects::backends(&config.app, &routing.main);
        let refs = backend_refs(config, &backends);
        let mut main = json!({"backendRefs": refs});
        let mut rules = Vec::new();
        for route in &routing.header_routes {
            rules.push(json!({
                "matches": matches(&route.name, &route.matches)?,
                "backendRefs": [version_ref(config, &route.version)],
            }));
        }
        if let Some(mirror) = &routing.mirror {
            let filters = json!([{
                "type": "RequestMirror",
                "requestMirror": {
                    "backendRef": version_ref(config, &mirror.version),
                    "percent": mirror.percent.min(100),
                },
            }]);
            if mirror.matches.is_empty() {
                main["filters"] = filters;
            } else {
                rules.push(json!({
                    "matches": matches(&mirror.name, &mirror.matches)?,
                    "backendRefs": refs,
                    "filters": filters,
                }));
            }
        }
        // The main rule first: `zdd status` reads the weights there.
        rules.insert(0, main);
        let spec = json!({"parentRefs": [{"name": config.gateway}], "rules": rules});
        Ok(vec![RouteObject {
            crd: &HTTP_ROUTE,
            object: HTTP_ROUTE.object(config, spec),
            change: format!(
                "HTTPRoute {} weights {backends}{}",
                objects::route_name(&config.app),
                managed_routes(config, routing)
            ),
        }])
    }

    fn backends_at(&self) -> Option<(&'static Crd, &'static str)> {
        Some((&HTTP_ROUTE, "/spec/rules/0/backendRefs"))
    }
}

//! `--router traefik`: a TraefikService `<app>` with `weighted` services, and the IngressRoute
//! that sends the entry point's traffic to it. Header routes are more IngressRoute routes, with
//! `Header`/`HeaderRegexp` matchers and priorities above the main route's; a mirror is a
//! TraefikService `<app>-mirror` whose `mirroring` has `<app>` as its main service, routed to
//! instead of `<app>` (by the main route, or by a route of the mirror's own matches).

use serde_json::{Value, json};

use super::{Crd, KubeRouter, RouteObject, StaleObject, backend_refs, managed_routes, version_ref};
use crate::model::Routing;
use crate::platform::Result;
use crate::platform::kubernetes::{KubernetesConfig, objects};
use crate::platform::matches::{router_matcher, traefik_rule};

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

/// Priorities: without one, a route's priority is its rule's length (15 for the main route's
/// ``PathPrefix(`/`)``); the managed routes' are far above it, header routes first, in order.
const MIRROR_ROUTE_PRIORITY: usize = 1000;
const HEADER_ROUTE_PRIORITY: usize = 2000;

/// The largest request body a copy carries (the builtin router's limit): a larger request is
/// served, not copied.
const MAX_BODY_SIZE: usize = 64 * 1024;

pub struct Traefik;

fn traefik_service_ref(name: &str) -> Value {
    json!({"name": name, "kind": TRAEFIK_SERVICE.kind})
}

impl KubeRouter for Traefik {
    fn objects(&self, config: &KubernetesConfig, routing: &Routing) -> Result<Vec<RouteObject>> {
        let backends = objects::backends(&config.app, &routing.main);
        let name = objects::route_name(&config.app);
        let weighted = json!({"weighted": {"services": backend_refs(config, &backends)}});
        let mut applied = vec![RouteObject {
            crd: &TRAEFIK_SERVICE,
            object: TRAEFIK_SERVICE.object(config, weighted),
            change: format!("TraefikService {name} weights {backends}"),
        }];
        let mut main_service = traefik_service_ref(&name);
        let mut routes = Vec::new();
        for (index, route) in routing.header_routes.iter().enumerate() {
            routes.push(json!({
                "match": traefik_rule(&router_matcher(&route.matches)),
                "kind": "Rule",
                "priority": HEADER_ROUTE_PRIORITY - index,
                "services": [version_ref(config, &route.version)],
            }));
        }
        if let Some(mirror) = &routing.mirror {
            let mirrored = objects::mirror_service_name(&config.app);
            let target = objects::version_service_name(&config.app, &mirror.version);
            let spec = json!({"mirroring": {
                "name": name,
                "kind": TRAEFIK_SERVICE.kind,
                "maxBodySize": MAX_BODY_SIZE,
                "mirrors": [{
                    "name": target,
                    "port": config.service_port,
                    "percent": mirror.percent.min(100),
                }],
            }});
            applied.push(RouteObject {
                crd: &TRAEFIK_SERVICE,
                object: TRAEFIK_SERVICE.named(config, &mirrored, spec),
                change: format!(
                    "TraefikService {mirrored} mirrors {}% of {name} to {target}",
                    mirror.percent
                ),
            });
            if mirror.matches.is_empty() {
                main_service = traefik_service_ref(&mirrored);
            } else {
                routes.push(json!({
                    "match": traefik_rule(&router_matcher(&mirror.matches)),
                    "kind": "Rule",
                    "priority": MIRROR_ROUTE_PRIORITY,
                    "services": [traefik_service_ref(&mirrored)],
                }));
            }
        }
        // The main route first: it is the one that always exists.
        routes.insert(
            0,
            json!({"match": "PathPrefix(`/`)", "kind": "Rule", "services": [main_service]}),
        );
        let ingress = json!({"entryPoints": [config.traefik_entry_point], "routes": routes});
        applied.push(RouteObject {
            crd: &INGRESS_ROUTE,
            object: INGRESS_ROUTE.object(config, ingress),
            change: format!(
                "IngressRoute {name} applied{}",
                managed_routes(config, routing)
            ),
        });
        Ok(applied)
    }

    fn stale(
        &self,
        config: &KubernetesConfig,
        previous: &Routing,
        routing: &Routing,
    ) -> Vec<StaleObject> {
        if previous.mirror.is_none() || routing.mirror.is_some() {
            return Vec::new();
        }
        let name = objects::mirror_service_name(&config.app);
        vec![StaleObject {
            crd: &TRAEFIK_SERVICE,
            change: format!("TraefikService {name} deleted"),
            name,
        }]
    }

    fn backends_at(&self) -> Option<(&'static Crd, &'static str)> {
        Some((&TRAEFIK_SERVICE, "/spec/weighted/services"))
    }
}

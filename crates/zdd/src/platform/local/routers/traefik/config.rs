//! Traefik's dynamic configuration: a pure function of the route table, the pod slots and the
//! mirrors' services.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::{Map, Value, json};
use zdd_router::{Mirror, MirrorOptions, Route, RouteTable};

use super::mirrors::{MirrorService, RuleAt};
use super::slots::{SlotEntry, slot_name};
use crate::platform::matches::traefik_rule;

/// Where a rule's pods are reached, and its mirrors' services.
pub(super) struct Placement<'a> {
    pub(super) slots: &'a BTreeMap<String, SlotEntry>,
    pub(super) slot_addrs: &'a [SocketAddr],
    pub(super) mirrors: &'a BTreeMap<RuleAt, MirrorService>,
}

/// The dynamic configuration for `table`, its pods reached through `placement`'s slots and its
/// mirrors through their services, marked with `generation`.
pub(super) fn dynamic_config(table: &RouteTable, placement: &Placement, generation: u64) -> Value {
    let slots = placement.slots;
    let mut routers = Map::new();
    let mut services = Map::new();
    let mut middlewares = Map::new();

    for (entry_point, route) in [("web", &table.main), ("preview", &table.preview)] {
        add_route(entry_point, route, placement, &mut routers, &mut services);
    }
    // Pod slots: one entry point each, whose router sets the pod's headers. Slots of pods
    // that just left stay (SLOT_LINGER), so requests already sent to them still arrive.
    for entry in slots.values() {
        let endpoint = &entry.endpoint;
        let name = slot_name(entry.slot);
        routers.insert(
            name.clone(),
            json!({
                "entryPoints": [name],
                "rule": "PathPrefix(`/`)",
                "middlewares": [format!("{name}-headers")],
                "service": name,
            }),
        );
        let mut headers = json!({
            "X-Zdd-Version": endpoint.version,
            "X-Zdd-Pod": endpoint.pod,
        });
        if let Some(node) = &endpoint.node {
            headers["X-Zdd-Node"] = json!(node);
        }
        middlewares.insert(
            format!("{name}-headers"),
            json!({"headers": {"customResponseHeaders": headers}}),
        );
        services.insert(
            name,
            json!({"loadBalancer": {"servers": [{"url": format!("http://{}", endpoint.addr)}]}}),
        );
    }
    // The API on its loopback entry point, each answer marked with this configuration's
    // generation (see the module's documentation).
    routers.insert(
        "zdd-api".into(),
        json!({
            "entryPoints": ["traefik"],
            "rule": "PathPrefix(`/api`)",
            "middlewares": ["zdd-generation"],
            "service": "api@internal",
        }),
    );
    middlewares.insert(
        "zdd-generation".into(),
        json!({"headers": {"customResponseHeaders": {"X-Zdd-Generation": generation.to_string()}}}),
    );
    // Traefik refuses an empty section ("cannot be a standalone element"): leave it out.
    let mut http = Map::new();
    for (section, entries) in [
        ("routers", routers),
        ("services", services),
        ("middlewares", middlewares),
    ] {
        if !entries.is_empty() {
            http.insert(section.into(), Value::Object(entries));
        }
    }
    json!({ "http": http })
}

/// One router per rule (earlier rules get higher priorities), one weighted service per rule, one
/// load-balancer service per backend whose servers are the pod slots. A rule with a mirror routes
/// to a `mirroring` service of its weighted one.
fn add_route(
    entry_point: &'static str,
    route: &Route,
    placement: &Placement,
    routers: &mut Map<String, Value>,
    services: &mut Map<String, Value>,
) {
    let rules = route.rules.len();
    for (index, rule) in route.rules.iter().enumerate() {
        let name = format!("{entry_point}-{index}");
        let mut children = Vec::new();
        for backend in &rule.backends {
            let backend_name = format!("{name}-{}", backend.name);
            let servers: Vec<Value> = backend
                .endpoints
                .iter()
                .map(|endpoint| {
                    let addr = placement
                        .slots
                        .get(&endpoint.pod)
                        .and_then(|entry| placement.slot_addrs.get(entry.slot))
                        .copied()
                        .unwrap_or(endpoint.addr);
                    json!({"url": format!("http://{addr}")})
                })
                .collect();
            // No servers: Traefik answers 503 "no available server", as the builtin router does.
            services.insert(
                backend_name.clone(),
                json!({"loadBalancer": {"servers": servers}}),
            );
            if backend.weight > 0 {
                children.push(json!({"name": backend_name, "weight": backend.weight}));
            }
        }
        let service = if children.is_empty() {
            // Every weight 0: nothing may get traffic.
            json!({"loadBalancer": {"servers": []}})
        } else {
            json!({"weighted": {"services": children}})
        };
        services.insert(name.clone(), service);
        let mirrored = rule
            .mirror
            .as_ref()
            .zip(placement.mirrors.get(&(entry_point, index)));
        let routed = match mirrored {
            Some((mirror, service)) => add_mirror(&name, mirror, service, services),
            None => name.clone(),
        };
        routers.insert(
            name.clone(),
            json!({
                "entryPoints": [entry_point],
                "rule": traefik_rule(&rule.matcher),
                "priority": (rules - index) * 10,
                "service": routed,
            }),
        );
    }
}

/// The mirror's own service (the endpoints themselves: no pod slot, its answers are discarded
/// anyway) and a `mirroring` service over the rule's service `main`; returns the latter's name.
fn add_mirror(
    main: &str,
    mirror: &Mirror,
    target: &MirrorService,
    services: &mut Map<String, Value>,
) -> String {
    let servers: Vec<Value> = mirror
        .endpoints
        .iter()
        .map(|endpoint| json!({"url": format!("http://{}", endpoint.addr)}))
        .collect();
    services.insert(
        target.service.clone(),
        json!({"loadBalancer": {"servers": servers}}),
    );
    let name = format!("{main}-mirrored");
    services.insert(
        name.clone(),
        json!({"mirroring": {
            "service": main,
            "mirrorBody": true,
            // The builtin router's limit: above it, a request is served but not copied.
            "maxBodySize": MirrorOptions::default().max_body,
            "mirrors": [{"name": target.service, "percent": mirror.percent.min(100)}],
        }}),
    );
    name
}

//! Traefik's dynamic configuration: a pure function of the route table and the pod slots.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::{Map, Value, json};
use zdd_router::{Matcher, Route, RouteTable};

use super::slots::{SlotEntry, slot_name};

/// The dynamic configuration for `table`, its pods reached through `slots` (listening on
/// `slot_addrs`), marked with `generation`.
pub(super) fn dynamic_config(
    table: &RouteTable,
    slots: &BTreeMap<String, SlotEntry>,
    slot_addrs: &[SocketAddr],
    generation: u64,
) -> Value {
    let mut routers = Map::new();
    let mut services = Map::new();
    let mut middlewares = Map::new();

    for (entry_point, route) in [("web", &table.main), ("preview", &table.preview)] {
        add_route(
            entry_point,
            route,
            slots,
            slot_addrs,
            &mut routers,
            &mut services,
        );
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

fn traefik_rule(matcher: &Matcher) -> String {
    match matcher {
        Matcher::Always => "PathPrefix(`/`)".to_owned(),
        Matcher::Header { name, value } => {
            format!(
                "Header(`{}`, `{}`)",
                name.replace('`', ""),
                value.replace('`', "")
            )
        }
    }
}

/// One router per rule (earlier rules get higher priorities), one weighted service per rule, one
/// load-balancer service per backend whose servers are the pod slots.
fn add_route(
    entry_point: &str,
    route: &Route,
    slots: &BTreeMap<String, SlotEntry>,
    slot_addrs: &[SocketAddr],
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
                    let addr = slots
                        .get(&endpoint.pod)
                        .and_then(|entry| slot_addrs.get(entry.slot))
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
        routers.insert(
            name.clone(),
            json!({
                "entryPoints": [entry_point],
                "rule": traefik_rule(&rule.matcher),
                "priority": (rules - index) * 10,
                "service": name,
            }),
        );
    }
}

//! The local platform's data plane: the engine's [`Routing`] over the endpoints last published,
//! translated into the router's [`RouteTable`] and applied to the router.

use std::collections::BTreeMap;

use zdd_router::{Backend, Endpoint, Matcher, Mirror, Route, RouteTable, Rule};

use super::routers::LocalRouter;
use crate::model::{Routing, TrafficPolicy};
use crate::platform::PlatformError;
use crate::platform::matches::router_matcher;

/// What the router serves, and the router itself.
pub struct LocalDataPlane {
    pub routing: Routing,
    /// Ready replicas per version, as the endpoint controller last published them.
    pub endpoints: BTreeMap<String, Vec<Endpoint>>,
    pub router: LocalRouter,
}

impl LocalDataPlane {
    /// Translates the current routing and endpoints and applies them; returns once the router
    /// serves them.
    pub async fn apply(&self) -> Result<(), PlatformError> {
        self.router
            .apply(&route_table(&self.routing, &self.endpoints))
            .await
    }
}

/// The route table for `routing` over `endpoints` (per version). The main entry point: a rule per
/// header route, in order, each to its version; then, for a mirror with conditions, a rule with
/// them that splits like the main rule and carries the mirror; last the main rule, which takes
/// every other request (and carries a mirror without conditions). A backend per version (or one
/// for every ready replica). The preview entry point: its version, or nothing.
pub fn route_table(routing: &Routing, endpoints: &BTreeMap<String, Vec<Endpoint>>) -> RouteTable {
    let version_backend = |version: &str, weight: u32| Backend {
        name: version.to_owned(),
        weight,
        endpoints: endpoints.get(version).cloned().unwrap_or_default(),
    };
    let main_backends = match &routing.main {
        TrafficPolicy::AllReady => vec![Backend {
            name: "all".to_owned(),
            weight: 1,
            endpoints: endpoints.values().flatten().cloned().collect(),
        }],
        TrafficPolicy::Only(version) => vec![version_backend(version, 1)],
        TrafficPolicy::Weighted(weights) => weights
            .iter()
            .map(|(version, weight)| version_backend(version, weight))
            .collect(),
    };
    let mut rules: Vec<Rule> = routing
        .header_routes
        .iter()
        .map(|route| Rule {
            matcher: router_matcher(&route.matches),
            backends: vec![version_backend(&route.version, 1)],
            mirror: None,
        })
        .collect();
    let mirror = routing.mirror.as_ref().map(|mirror| Mirror {
        name: mirror.version.clone(),
        percent: mirror.percent,
        endpoints: endpoints.get(&mirror.version).cloned().unwrap_or_default(),
    });
    let mut main = Rule {
        matcher: Matcher::Always,
        backends: main_backends,
        mirror: None,
    };
    match (&routing.mirror, mirror) {
        (Some(route), Some(mirror)) if !route.matches.is_empty() => rules.push(Rule {
            matcher: router_matcher(&route.matches),
            backends: main.backends.clone(),
            mirror: Some(mirror),
        }),
        (_, mirror) => main.mirror = mirror,
    }
    rules.push(main);
    RouteTable {
        main: Route { rules },
        preview: match &routing.preview {
            Some(version) => Route::always(vec![version_backend(version, 1)]),
            None => Route::default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{self, HeaderRoute, MirrorRoute, RequestMatch, Weights};
    use zdd_router::{Condition, ValueMatch};

    fn endpoints() -> BTreeMap<String, Vec<Endpoint>> {
        ["v1", "v2"]
            .iter()
            .enumerate()
            .map(|(i, version)| {
                let endpoint = Endpoint {
                    pod: format!("{version}-1"),
                    version: (*version).to_owned(),
                    addr: format!("127.0.0.1:{}", 9001 + i).parse().unwrap(),
                    node: None,
                };
                ((*version).to_owned(), vec![endpoint])
            })
            .collect()
    }

    fn canary() -> RequestMatch {
        RequestMatch::Header {
            name: "X-Canary".into(),
            value: model::ValueMatch::Exact("always".into()),
        }
    }

    fn weighted() -> TrafficPolicy {
        TrafficPolicy::Weighted(Weights(vec![("v1".into(), 90), ("v2".into(), 10)]))
    }

    #[test]
    fn header_routes_go_first_each_to_its_version() {
        let routing = Routing {
            main: weighted(),
            header_routes: vec![HeaderRoute {
                name: "testers".into(),
                matches: vec![
                    canary(),
                    RequestMatch::Cookie {
                        name: "group".into(),
                        value: model::ValueMatch::Regex("b|c".into()),
                    },
                ],
                version: "v2".into(),
            }],
            ..Routing::default()
        };
        let table = route_table(&routing, &endpoints());
        let rules = &table.main.rules;
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0].matcher,
            Matcher::All(vec![
                Condition::Header {
                    name: "X-Canary".into(),
                    value: ValueMatch::Exact("always".into()),
                },
                Condition::Cookie {
                    name: "group".into(),
                    value: ValueMatch::Regex("b|c".into()),
                },
            ])
        );
        assert_eq!(rules[0].backends.len(), 1);
        assert_eq!(rules[0].backends[0].endpoints, endpoints()["v2"]);
        assert_eq!(rules[1].matcher, Matcher::Always);
        assert_eq!(rules[1].backends.len(), 2);
        assert!(rules.iter().all(|rule| rule.mirror.is_none()));
    }

    #[test]
    fn a_mirror_goes_on_the_main_rule_or_on_a_rule_of_its_own_conditions() {
        let mirror = MirrorRoute {
            name: "shadow".into(),
            version: "v2".into(),
            percent: 50,
            matches: vec![],
        };
        let routing = Routing {
            main: TrafficPolicy::Only("v1".into()),
            mirror: Some(mirror.clone()),
            ..Routing::default()
        };
        let table = route_table(&routing, &endpoints());
        assert_eq!(table.main.rules.len(), 1);
        let expected = Mirror {
            name: "v2".into(),
            percent: 50,
            endpoints: endpoints()["v2"].clone(),
        };
        assert_eq!(table.main.rules[0].mirror, Some(expected.clone()));

        let routing = Routing {
            main: weighted(),
            header_routes: vec![HeaderRoute {
                name: "testers".into(),
                matches: vec![canary()],
                version: "v2".into(),
            }],
            mirror: Some(MirrorRoute {
                matches: vec![RequestMatch::Header {
                    name: "X-Shadow".into(),
                    value: model::ValueMatch::Exact("yes".into()),
                }],
                ..mirror
            }),
            ..Routing::default()
        };
        let rules = route_table(&routing, &endpoints()).main.rules;
        assert_eq!(rules.len(), 3);
        assert!(rules[0].mirror.is_none());
        assert_eq!(rules[1].matcher, Matcher::header("X-Shadow", "yes"));
        assert_eq!(rules[1].backends, rules[2].backends);
        assert_eq!(rules[1].mirror, Some(expected));
        assert_eq!(
            (&rules[2].matcher, &rules[2].mirror),
            (&Matcher::Always, &None)
        );
    }
}

//! Header routes and mirrors on Kubernetes, against the fake API server: the exact objects each
//! router applies, in order, and their removal; the Service router's refusal.

use fake_apiserver::RecordedRequest;
use fake_apiserver::store::TRAEFIK_SERVICES;
use serde_json::{Value, json};
use zdd::model::{HeaderRoute, MirrorRoute, RequestMatch, Routing, ValueMatch};
use zdd::platform::kubernetes::KubernetesPlatform;
use zdd::platform::{Platform, RouterKind};
use zdd_test_support::http::send;

use crate::kubernetes_platform::{Cluster, NAMESPACE, WAIT, cluster, template, weighted};

fn testers() -> HeaderRoute {
    HeaderRoute {
        name: "testers".into(),
        matches: vec![
            RequestMatch::Header {
                name: "X-Canary".into(),
                value: ValueMatch::Exact("always".into()),
            },
            RequestMatch::Cookie {
                name: "group".into(),
                value: ValueMatch::Exact("b".into()),
            },
        ],
        version: "v2".into(),
    }
}

fn shadow(percent: u32, matches: Vec<RequestMatch>) -> MirrorRoute {
    MirrorRoute {
        name: "shadow".into(),
        version: "v2".into(),
        percent,
        matches,
    }
}

fn shadow_match() -> RequestMatch {
    RequestMatch::Header {
        name: "X-Shadow".into(),
        value: ValueMatch::Regex("yes|y".into()),
    }
}

/// v1 and v2 ready, then the routings of an A/B and a shadow at 90/10: a header route, a mirror
/// added, changed to 30% of the requests with `X-Shadow`, removed, the header route removed.
pub(crate) async fn run_managed_routes(c: &Cluster) -> KubernetesPlatform {
    let mut platform = c.connect().await;
    platform.scale(&template("v1"), 1).await.unwrap();
    platform.wait_ready("v1", 1, WAIT).await.unwrap();
    platform.set_routing(&Routing::default()).await.unwrap();
    platform.scale(&template("v2"), 1).await.unwrap();
    platform.wait_ready("v2", 1, WAIT).await.unwrap();
    let base = weighted(&[("v1", 90), ("v2", 10)]);
    let with = |header_routes: Vec<HeaderRoute>, mirror: Option<MirrorRoute>| Routing {
        header_routes,
        mirror,
        ..base.clone()
    };
    for routing in [
        base.clone(),
        with(vec![testers()], None),
        with(vec![testers()], Some(shadow(50, vec![]))),
        with(vec![testers()], Some(shadow(30, vec![shadow_match()]))),
        with(vec![testers()], None),
        base.clone(),
    ] {
        platform.set_routing(&routing).await.unwrap();
    }
    platform
}

/// The writes to route objects after the first routing: `(verb, kind/name, spec)`.
fn route_writes(c: &Cluster) -> Vec<(String, String, Value)> {
    let requests: Vec<RecordedRequest> = c.server.requests();
    let route_write = |r: &&RecordedRequest| {
        r.method != "GET"
            && ["/traefikservices/", "/ingressroutes/", "/httproutes/"]
                .iter()
                .any(|kind| r.path.contains(kind))
    };
    let mut writes: Vec<(String, String, Value)> = requests
        .iter()
        .filter(route_write)
        .map(|r| {
            let mut parts = r.path.rsplit('/');
            let name = parts.next().unwrap_or_default();
            let kind = parts.next().unwrap_or_default();
            let spec = r.json()["spec"].clone();
            (r.verb().to_owned(), format!("{kind}/{name}"), spec)
        })
        .collect();
    // The default routing's objects come first; the sequence under test after them.
    let first_weights = writes
        .iter()
        .position(|(_, _, spec)| {
            spec["weighted"]["services"]
                .as_array()
                .is_some_and(|s| s.len() == 2)
                || spec["rules"][0]["backendRefs"]
                    .as_array()
                    .is_some_and(|s| s.len() == 2)
        })
        .expect("the weights were applied");
    writes.drain(..first_weights);
    writes
}

fn patch(object: &str, spec: Value) -> (String, String, Value) {
    ("patch".into(), object.into(), spec)
}

const TESTERS_RULE: &str = r#"PathPrefix(`/`) && Header("X-Canary", "always") && HeaderRegexp("Cookie", "^(?:.*;\\s*)?group=b\\s*(?:;.*)?$")"#;
const COOKIE_REGEX: &str = r"^(?:.*;\s*)?group=b\s*(?:;.*)?$";

#[tokio::test]
async fn traefik_header_routes_and_mirrors_are_ingressroute_routes_and_a_mirroring_service() {
    let c = cluster(RouterKind::Traefik).await;
    run_managed_routes(&c).await;
    let weights = json!({"weighted": {"services": [
        {"name": "web-v1", "port": 80, "weight": 90},
        {"name": "web-v2", "port": 80, "weight": 10},
    ]}});
    let main_to = |service: &str| json!({"match": "PathPrefix(`/`)", "kind": "Rule", "services": [{"name": service, "kind": "TraefikService"}]});
    let testers = json!({
        "match": TESTERS_RULE, "kind": "Rule", "priority": 2000,
        "services": [{"name": "web-v2", "port": 80}],
    });
    let shadow_route = json!({
        "match": r#"PathPrefix(`/`) && HeaderRegexp("X-Shadow", "^(?:yes|y)$")"#, "kind": "Rule",
        "priority": 1000, "services": [{"name": "web-mirror", "kind": "TraefikService"}],
    });
    let ingress = |routes: Vec<Value>| json!({"entryPoints": ["web"], "routes": routes});
    let mirroring = |percent: u32| {
        json!({"mirroring": {
            "name": "web", "kind": "TraefikService", "maxBodySize": 65536,
            "mirrors": [{"name": "web-v2", "port": 80, "percent": percent}],
        }})
    };
    assert_eq!(
        route_writes(&c),
        vec![
            // 90/10: the IngressRoute already routes to the TraefikService.
            patch("traefikservices/web", weights),
            // A header route, above the main route.
            patch(
                "ingressroutes/web",
                ingress(vec![main_to("web"), testers.clone()])
            ),
            // A mirror of every request: its service first, then the route to it.
            patch("traefikservices/web-mirror", mirroring(50)),
            patch(
                "ingressroutes/web",
                ingress(vec![main_to("web-mirror"), testers.clone()])
            ),
            // 30% of the requests with X-Shadow: a route of their own, between the two.
            patch("traefikservices/web-mirror", mirroring(30)),
            patch(
                "ingressroutes/web",
                ingress(vec![main_to("web"), testers.clone(), shadow_route])
            ),
            // No mirror: nothing routes to its service any more, then it goes.
            patch("ingressroutes/web", ingress(vec![main_to("web"), testers])),
            (
                "delete".into(),
                "traefikservices/web-mirror".into(),
                Value::Null
            ),
            // No header route.
            patch("ingressroutes/web", ingress(vec![main_to("web")])),
        ]
    );
    assert!(
        c.server
            .object(TRAEFIK_SERVICES, NAMESPACE, "web-mirror")
            .is_none()
    );
}

#[tokio::test]
async fn gateway_api_header_routes_and_mirrors_are_httproute_rules_and_filters() {
    let c = cluster(RouterKind::GatewayApi).await;
    run_managed_routes(&c).await;
    let weights = json!([
        {"name": "web-v1", "port": 80, "weight": 90},
        {"name": "web-v2", "port": 80, "weight": 10},
    ]);
    let mirror = |percent: u32| {
        json!([{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"name": "web-v2", "port": 80}, "percent": percent,
        }}])
    };
    let main = json!({"backendRefs": weights});
    let mirrored_main = json!({"backendRefs": weights, "filters": mirror(50)});
    let path = json!({"type": "PathPrefix", "value": "/"});
    let testers = json!({
        "matches": [{"path": path, "headers": [
            {"type": "Exact", "name": "X-Canary", "value": "always"},
            {"type": "RegularExpression", "name": "Cookie", "value": COOKIE_REGEX},
        ]}],
        "backendRefs": [{"name": "web-v2", "port": 80}],
    });
    let shadow_rule = json!({
        "matches": [{"path": path, "headers": [
            {"type": "RegularExpression", "name": "X-Shadow", "value": "^(?:yes|y)$"},
        ]}],
        "backendRefs": weights,
        "filters": mirror(30),
    });
    let route = |rules: Vec<Value>| {
        patch(
            "httproutes/web",
            json!({"parentRefs": [{"name": "zdd-gateway"}], "rules": rules}),
        )
    };
    assert_eq!(
        route_writes(&c),
        vec![
            route(vec![main.clone()]),
            route(vec![main.clone(), testers.clone()]),
            route(vec![mirrored_main, testers.clone()]),
            route(vec![main.clone(), testers.clone(), shadow_rule]),
            route(vec![main.clone(), testers]),
            route(vec![main]),
        ]
    );
}

/// The errors of `routings` on `router`, each set after the default routing; none of them sent
/// a request.
async fn refusals(router: RouterKind, routings: &[Routing]) -> Vec<String> {
    let c = cluster(router).await;
    let mut platform = c.connect().await;
    platform.set_routing(&Routing::default()).await.unwrap();
    let sent = c.server.requests().len();
    let mut errors = Vec::new();
    for routing in routings {
        let err = platform.set_routing(routing).await.unwrap_err();
        errors.push(err.to_string());
    }
    assert_eq!(c.server.requests().len(), sent, "nothing was sent");
    errors
}

/// The Service router cannot match a header or copy a request: it says so, and sends nothing.
#[tokio::test]
async fn the_service_router_refuses_header_routes_and_mirrors() {
    let header_route = Routing {
        header_routes: vec![testers()],
        ..Routing::default()
    };
    let mirror = Routing {
        mirror: Some(shadow(50, vec![])),
        ..Routing::default()
    };
    let errors = refusals(RouterKind::Service, &[header_route, mirror]).await;
    assert!(errors[0].contains("header route \"testers\""), "{errors:?}");
    assert!(errors[1].contains("mirror route \"shadow\""), "{errors:?}");
    for err in &errors {
        assert!(
            err.contains("--router traefik or --router gateway-api"),
            "{err}"
        );
    }
}

/// The Gateway API considers one match per header name: two cookie matches in one route cannot be
/// expressed, and nothing is applied.
#[tokio::test]
async fn gateway_api_refuses_two_matches_on_one_header() {
    let mut route = testers();
    route.matches.push(RequestMatch::Cookie {
        name: "beta".into(),
        value: ValueMatch::Exact("1".into()),
    });
    let routing = Routing {
        header_routes: vec![route],
        ..Routing::default()
    };
    let errors = refusals(RouterKind::GatewayApi, &[routing]).await;
    assert!(errors[0].contains("route \"testers\""), "{errors:?}");
    assert!(errors[0].contains("two on Cookie"), "{errors:?}");
}

/// The version that answered a GET through the fake data plane to `web`, with `headers`.
async fn version_with(c: &Cluster, headers: &[(&str, &str)]) -> Option<String> {
    let url = c.server.data_plane_url(NAMESPACE, "web");
    let (authority, path) = url
        .trim_start_matches("http://")
        .split_once('/')
        .expect("a path");
    let answer = send(
        &format!("http://{authority}"),
        "GET",
        &format!("/{path}/"),
        headers,
        None,
    )
    .await
    .expect("the data plane answers");
    answer.header("x-version").map(str::to_owned)
}

/// Through the (fake) cluster's data plane: the testers reach v2 while their route is set, though
/// its weight is 0; everyone else stays on v1; without the route the testers are back on v1.
async fn header_route_reaches_its_version(router: RouterKind) {
    let c = cluster(router).await;
    let mut platform = c.connect().await;
    for version in ["v1", "v2"] {
        platform.scale(&template(version), 1).await.unwrap();
        platform.wait_ready(version, 1, WAIT).await.unwrap();
    }
    let base = weighted(&[("v1", 100), ("v2", 0)]);
    let ab = Routing {
        header_routes: vec![testers()],
        ..base.clone()
    };
    platform.set_routing(&ab).await.unwrap();
    let tester: &[(&str, &str)] = &[("X-Canary", "always"), ("Cookie", "theme=dark; group=b")];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    // The endpoints reach the data plane on their own tick.
    while version_with(&c, tester).await.as_deref() != Some("v2") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the testers never reached v2"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for _ in 0..10 {
        assert_eq!(version_with(&c, tester).await.as_deref(), Some("v2"));
        assert_eq!(version_with(&c, &tester[..1]).await.as_deref(), Some("v1"));
        assert_eq!(version_with(&c, &[]).await.as_deref(), Some("v1"));
    }
    platform.set_routing(&base).await.unwrap();
    for _ in 0..10 {
        assert_eq!(version_with(&c, tester).await.as_deref(), Some("v1"));
    }
}

#[tokio::test]
async fn a_traefik_header_route_reaches_its_version() {
    header_route_reaches_its_version(RouterKind::Traefik).await;
}

#[tokio::test]
async fn a_gateway_api_header_route_reaches_its_version() {
    header_route_reaches_its_version(RouterKind::GatewayApi).await;
}

//! The same behaviour, whichever router serves it: these run for the builtin router
//! (`router_builtin`) and for Traefik (`router_traefik`), each as the local platform runs it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use zdd::platform::RouterKind;
use zdd::platform::local::process_groups::ProcessGroups;
use zdd::platform::local::routers::LocalRouter;
use zdd_router::{Backend, Endpoint, Matcher, Route, RouteTable, Rule};
use zdd_test_support::http::{get, get_with};
use zdd_test_support::upstream::{TestServer, refused_addr};

struct Running {
    router: LocalRouter,
    groups: Arc<ProcessGroups>,
    _dir: tempfile::TempDir,
}

impl Running {
    fn main(&self) -> String {
        format!("http://{}", self.router.addrs().main)
    }
    fn preview(&self) -> String {
        format!("http://{}", self.router.addrs().preview)
    }
    async fn stop(mut self) {
        self.router.shutdown().await;
        self.groups.kill_all();
    }
}

async fn start(kind: RouterKind) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let groups = Arc::new(ProcessGroups::new());
    let router = LocalRouter::start(
        kind,
        "127.0.0.1:0".parse().unwrap(),
        dir.path(),
        groups.clone(),
    )
    .await
    .unwrap_or_else(|err| panic!("cannot start the {kind:?} router: {err}"));
    Running {
        router,
        groups,
        _dir: dir,
    }
}

fn endpoint(pod: &str, version: &str, addr: SocketAddr) -> Endpoint {
    Endpoint {
        pod: pod.into(),
        version: version.into(),
        addr,
        node: Some(format!("node-of-{pod}")),
    }
}

fn backend(name: &str, weight: u32, endpoints: Vec<Endpoint>) -> Backend {
    Backend {
        name: name.into(),
        weight,
        endpoints,
    }
}

pub async fn round_robin_inside_a_version_with_headers(kind: RouterKind) {
    let running = start(kind).await;
    let (a, b) = (
        TestServer::answering("a").await,
        TestServer::answering("b").await,
    );
    let table = RouteTable {
        main: Route::always(vec![backend(
            "v1",
            1,
            vec![
                endpoint("v1-1", "v1", a.addr),
                endpoint("v1-2", "v1", b.addr),
            ],
        )]),
        preview: Route::default(),
    };
    running.router.apply(&table).await.unwrap();
    let mut per_pod = BTreeMap::<String, u32>::new();
    for _ in 0..20 {
        let answer = get(&running.main()).await.unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.header("x-zdd-version"), Some("v1"), "{answer:?}");
        let pod = answer.header("x-zdd-pod").unwrap().to_owned();
        let node = format!("node-of-{pod}");
        assert_eq!(
            answer.header("x-zdd-node"),
            Some(node.as_str()),
            "{answer:?}"
        );
        // The header names the pod that really answered.
        let expected_body = if pod == "v1-1" { "a" } else { "b" };
        assert_eq!(answer.body, expected_body, "{answer:?}");
        *per_pod.entry(pod).or_default() += 1;
    }
    assert_eq!(per_pod.len(), 2, "{per_pod:?}");
    assert!(
        per_pod.values().all(|n| (6..=14).contains(n)),
        "{per_pod:?}"
    );
    running.stop().await;
}

pub async fn weighted_split_between_versions(kind: RouterKind) {
    let running = start(kind).await;
    let (v1, v2) = (
        TestServer::answering("one").await,
        TestServer::answering("two").await,
    );
    let table = RouteTable {
        main: Route::always(vec![
            backend("v1", 3, vec![endpoint("v1-1", "v1", v1.addr)]),
            backend("v2", 1, vec![endpoint("v2-1", "v2", v2.addr)]),
        ]),
        preview: Route::default(),
    };
    running.router.apply(&table).await.unwrap();
    let total = 200;
    let mut v2_answers = 0;
    for _ in 0..total {
        let answer = get(&running.main()).await.unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        if answer.header("x-zdd-version") == Some("v2") {
            assert_eq!(answer.body, "two");
            v2_answers += 1;
        }
    }
    // 25% expected; both routers spread weights deterministically, the bounds are loose.
    assert!((30..=70).contains(&v2_answers), "v2: {v2_answers}/{total}");

    // Weight 0 takes nothing.
    let table = RouteTable {
        main: Route::always(vec![
            backend("v1", 0, vec![endpoint("v1-1", "v1", v1.addr)]),
            backend("v2", 5, vec![endpoint("v2-1", "v2", v2.addr)]),
        ]),
        preview: Route::default(),
    };
    running.router.apply(&table).await.unwrap();
    for _ in 0..20 {
        let answer = get(&running.main()).await.unwrap();
        assert_eq!(answer.header("x-zdd-version"), Some("v2"), "{answer:?}");
    }
    running.stop().await;
}

pub async fn preview_route_and_failures(kind: RouterKind) {
    let running = start(kind).await;
    let (v1, v2) = (
        TestServer::answering("one").await,
        TestServer::answering("two").await,
    );
    let table = RouteTable {
        main: Route::always(vec![backend(
            "v1",
            1,
            vec![endpoint("v1-1", "v1", v1.addr)],
        )]),
        preview: Route::always(vec![backend(
            "v2",
            1,
            vec![endpoint("v2-1", "v2", v2.addr)],
        )]),
    };
    running.router.apply(&table).await.unwrap();
    for _ in 0..10 {
        let main = get(&running.main()).await.unwrap();
        let preview = get(&running.preview()).await.unwrap();
        assert_eq!((main.status, main.body.as_str()), (200, "one"));
        assert_eq!((preview.status, preview.body.as_str()), (200, "two"));
        assert_eq!(preview.header("x-zdd-version"), Some("v2"));
    }

    // No preview route: 404. A version without endpoints: 503.
    let table = RouteTable {
        main: Route::always(vec![backend("v2", 1, vec![])]),
        preview: Route::default(),
    };
    running.router.apply(&table).await.unwrap();
    assert_eq!(get(&running.preview()).await.unwrap().status, 404);
    for _ in 0..5 {
        assert_eq!(get(&running.main()).await.unwrap().status, 503);
    }

    // A refused endpoint: 502, and the request is not retried on the healthy endpoint beside it
    // (a retry would turn every 502 into a 200).
    let table = RouteTable {
        main: Route::always(vec![backend(
            "v1",
            1,
            vec![
                endpoint("v1-9", "v1", refused_addr()),
                endpoint("v1-1", "v1", v1.addr),
            ],
        )]),
        preview: Route::default(),
    };
    running.router.apply(&table).await.unwrap();
    let mut by_pod = BTreeMap::<(String, u16), u32>::new();
    for _ in 0..20 {
        let answer = get(&running.main()).await.unwrap();
        let pod = answer.header("x-zdd-pod").unwrap_or("none").to_owned();
        *by_pod.entry((pod, answer.status)).or_default() += 1;
    }
    let pods_and_statuses: Vec<_> = by_pod.keys().cloned().collect();
    assert_eq!(
        pods_and_statuses,
        [("v1-1".to_owned(), 200), ("v1-9".to_owned(), 502)],
        "{by_pod:?}"
    );
    assert!(
        by_pod[&("v1-9".to_owned(), 502)] >= 5,
        "round robin: {by_pod:?}"
    );
    running.stop().await;
}

pub async fn header_rule_goes_first(kind: RouterKind) {
    let running = start(kind).await;
    let (v1, v2) = (
        TestServer::answering("one").await,
        TestServer::answering("two").await,
    );
    let table = RouteTable {
        main: Route {
            rules: vec![
                Rule {
                    matcher: Matcher::header("X-Canary", "yes"),
                    backends: vec![backend("v2", 1, vec![endpoint("v2-1", "v2", v2.addr)])],
                    mirror: None,
                },
                Rule {
                    matcher: Matcher::Always,
                    backends: vec![backend("v1", 1, vec![endpoint("v1-1", "v1", v1.addr)])],
                    mirror: None,
                },
            ],
        },
        preview: Route::default(),
    };
    running.router.apply(&table).await.unwrap();
    for _ in 0..5 {
        let canary = get_with(&running.main(), "/", &[("X-Canary", "yes")])
            .await
            .unwrap();
        assert_eq!(canary.header("x-zdd-version"), Some("v2"), "{canary:?}");
        let other = get_with(&running.main(), "/", &[("X-Canary", "no")])
            .await
            .unwrap();
        assert_eq!(other.header("x-zdd-version"), Some("v1"), "{other:?}");
    }
    running.stop().await;
}

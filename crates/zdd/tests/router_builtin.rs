//! The builtin router against tiny upstreams on loopback.

mod router_support;

use router_support::contract;
use zdd::platform::local::RouterKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_inside_a_version_with_headers() {
    contract::round_robin_inside_a_version_with_headers(RouterKind::Builtin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_between_versions() {
    contract::weighted_split_between_versions(RouterKind::Builtin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_route_and_failures() {
    contract::preview_route_and_failures(RouterKind::Builtin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_rule_goes_first() {
    contract::header_rule_goes_first(RouterKind::Builtin).await;
}

/// A client's keep-alive connection reuses the router's upstream connection instead of opening
/// one per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_reuses_upstream_connections() {
    use std::sync::atomic::Ordering;
    use zdd::router::{Route, RouteTable};
    let running = contract::start(RouterKind::Builtin).await;
    let (addr, accepted) = router_support::counting_upstream(false).await;
    let table = RouteTable {
        main: contract::always(vec![contract::backend(
            "v1",
            1,
            vec![contract::endpoint("v1-1", "v1", addr)],
        )]),
        preview: Route::default(),
    };
    running.router.apply(&table).await.unwrap();
    let statuses = router_support::keep_alive_statuses(&running.main(), 50).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    running.stop().await;
}

/// A replica that closes every connection after its answer (as a draining one does) costs no
/// failed request: the next request goes on a new upstream connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_connections_causes_no_failure() {
    use std::sync::atomic::Ordering;
    use zdd::router::{Route, RouteTable};
    let running = contract::start(RouterKind::Builtin).await;
    let (addr, accepted) = router_support::counting_upstream(true).await;
    let table = RouteTable {
        main: contract::always(vec![contract::backend(
            "v1",
            1,
            vec![contract::endpoint("v1-1", "v1", addr)],
        )]),
        preview: Route::default(),
    };
    running.router.apply(&table).await.unwrap();
    let statuses = router_support::keep_alive_statuses(&running.main(), 30).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 30);
    running.stop().await;
}

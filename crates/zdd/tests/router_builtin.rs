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

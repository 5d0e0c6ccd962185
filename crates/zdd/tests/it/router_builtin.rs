//! The router contract for the builtin router, as the local platform runs it. Its own tests (edge
//! cases, connection reuse, its threads) are the router crate's: `crates/router/tests`.

use crate::router_contract as contract;
use zdd::platform::RouterKind;

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

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_regex_and_cookie_rules() {
    contract::header_regex_and_cookie_rules(RouterKind::Builtin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_routes_go_before_weights() {
    contract::header_routes_go_before_weights(RouterKind::Builtin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_copies_the_share_asked() {
    contract::mirror_copies_the_share_asked(RouterKind::Builtin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_shadow_costs_the_client_nothing() {
    contract::a_failing_shadow_costs_the_client_nothing(RouterKind::Builtin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_carries_the_body_up_to_the_limit() {
    contract::the_copy_carries_the_body_up_to_the_limit(RouterKind::Builtin).await;
}

//! zdd's integration tests, one module per subject, in one test binary (one link of kube, hyper
//! and the rest instead of one per file). `tests/demo.rs` stays a binary of its own, so that a demo
//! (up to 30 processes at 200 requests/s) runs with no other test beside it.
//!
//! One subject alone: `cargo test -p zdd --test it -- MODULE::` (for example `local_platform::`).

mod analysis;
mod check;
mod control;
mod feature_switch;
mod kubernetes_platform;
mod kubernetes_rollout;
mod kubernetes_routes;
mod local_platform;
mod nodes;
mod probe_cli;
mod rollout_faults;
mod rollout_prestop;
mod rollout_strategies;
mod router_builtin;
mod router_contract;
mod router_traefik;
mod spec;
mod spec_fields;
mod support;

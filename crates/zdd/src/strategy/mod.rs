//! One file per strategy. Each turns the spec into steps on the [`crate::platform::Platform`] trait,
//! through the [`Engine`]: it never scales a version to zero itself but calls
//! [`Engine::retire`], which checks the data plane first. `cluster_upgrade` is the one that
//! changes no version: it drains and returns the nodes under the old one.

pub mod blue_green;
pub mod canary_replicas;
pub mod canary_weight;
pub mod cluster_upgrade;
pub mod recreate;
pub mod rolling_update;
mod steps;

use crate::engine::{Engine, EngineError, Which};
use crate::model::{Routing, TrafficPolicy};
use crate::platform::Platform;
use crate::spec::Strategy;

/// Runs the spec's strategy from the old version (deployed, serving) to the new one.
pub async fn run<P: Platform>(engine: &mut Engine<'_, P>) -> Result<(), EngineError> {
    match engine.spec().strategy.clone() {
        Strategy::Recreate => recreate::run(engine).await,
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
            ..
        } => {
            let replicas = engine.replicas();
            let surge = max_surge.resolve(replicas, true);
            let unavailable = max_unavailable.resolve(replicas, false);
            rolling_update::run(engine, surge, unavailable).await
        }
        Strategy::BlueGreen {
            auto_promote,
            preview_checks,
        } => blue_green::run(engine, auto_promote, preview_checks).await,
        Strategy::CanaryReplicas { steps } => canary_replicas::run(engine, &steps).await,
        Strategy::CanaryWeight { steps } => canary_weight::run(engine, &steps).await,
        Strategy::ClusterUpgrade {
            node_downtime,
            eviction_timeout,
        } => cluster_upgrade::run(engine, node_downtime, eviction_timeout).await,
    }
}

/// The main route before the first step: blue-green and canary by weight route by version from
/// the start, the others send traffic to every ready replica (a Service selecting on `app` only).
pub fn initial_routing<P: Platform>(engine: &Engine<'_, P>) -> Routing {
    let main = match engine.spec().strategy {
        Strategy::BlueGreen { .. } | Strategy::CanaryWeight { .. } => {
            TrafficPolicy::Only(engine.name(Which::Old))
        }
        _ => TrafficPolicy::AllReady,
    };
    Routing::main_only(main)
}

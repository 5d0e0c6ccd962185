//! The local platform's data plane: the engine's [`Routing`] over the endpoints last published,
//! translated into the router's [`RouteTable`] and applied to the router.

use std::collections::BTreeMap;

use zdd_router::{Backend, Endpoint, Route, RouteTable};

use super::routers::LocalRouter;
use crate::model::{Routing, TrafficPolicy};
use crate::platform::PlatformError;

/// What the router serves, and the router itself.
pub struct LocalDataPlane {
    pub routing: Routing,
    /// Ready replicas per version, as the endpoint controller last published them.
    pub endpoints: BTreeMap<String, Vec<Endpoint>>,
    pub router: LocalRouter,
}

impl LocalDataPlane {
    /// Translates the current routing and endpoints and applies them; returns once the router
    /// serves them.
    pub async fn apply(&self) -> Result<(), PlatformError> {
        self.router
            .apply(&route_table(&self.routing, &self.endpoints))
            .await
    }
}

/// The route table for `routing` over `endpoints` (per version): one always-matching rule per
/// entry point, a backend per version (or one for every ready replica).
pub fn route_table(routing: &Routing, endpoints: &BTreeMap<String, Vec<Endpoint>>) -> RouteTable {
    let version_backend = |version: &str, weight: u32| Backend {
        name: version.to_owned(),
        weight,
        endpoints: endpoints.get(version).cloned().unwrap_or_default(),
    };
    let main_backends = match &routing.main {
        TrafficPolicy::AllReady => vec![Backend {
            name: "all".to_owned(),
            weight: 1,
            endpoints: endpoints.values().flatten().cloned().collect(),
        }],
        TrafficPolicy::Only(version) => vec![version_backend(version, 1)],
        TrafficPolicy::Weighted(weights) => weights
            .iter()
            .map(|(version, weight)| version_backend(version, weight))
            .collect(),
    };
    RouteTable {
        main: Route::always(main_backends),
        preview: match &routing.preview {
            Some(version) => Route::always(vec![version_backend(version, 1)]),
            None => Route::default(),
        },
    }
}

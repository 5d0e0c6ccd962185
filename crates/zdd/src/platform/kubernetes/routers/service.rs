//! `--router service`: the main Service alone routes (selectors and replica ratios), so there are
//! no weights to express, no header to match and no request to copy.

use super::{Crd, KubeRouter, RouteObject};
use crate::model::{Routing, TrafficPolicy};
use crate::platform::Result;
use crate::platform::kubernetes::{KubeError, KubernetesConfig};

pub struct ServiceOnly;

impl KubeRouter for ServiceOnly {
    fn objects(&self, _config: &KubernetesConfig, routing: &Routing) -> Result<Vec<RouteObject>> {
        if let Some(route) = routing.header_routes.first() {
            return Err(KubeError::HeaderRoutesNeedRouter(route.name.clone()).into());
        }
        if let Some(mirror) = &routing.mirror {
            return Err(KubeError::MirrorNeedsRouter(mirror.name.clone()).into());
        }
        match routing.main {
            TrafficPolicy::Weighted(_) => Err(KubeError::WeightsNeedRouter.into()),
            TrafficPolicy::AllReady | TrafficPolicy::Only(_) => Ok(Vec::new()),
        }
    }

    fn backends_at(&self) -> Option<(&'static Crd, &'static str)> {
        None
    }
}

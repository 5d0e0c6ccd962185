//! `--router service`: the main Service alone routes (selectors and replica ratios), so there are
//! no weights to express.

use super::{Crd, KubeRouter, RouteObject};
use crate::model::TrafficPolicy;
use crate::platform::Result;
use crate::platform::kubernetes::{KubeError, KubernetesConfig};

pub struct ServiceOnly;

impl KubeRouter for ServiceOnly {
    fn objects(
        &self,
        _config: &KubernetesConfig,
        main: &TrafficPolicy,
    ) -> Result<Vec<RouteObject>> {
        match main {
            TrafficPolicy::Weighted(_) => Err(KubeError::WeightsNeedRouter.into()),
            TrafficPolicy::AllReady | TrafficPolicy::Only(_) => Ok(Vec::new()),
        }
    }

    fn backends_at(&self) -> Option<(&'static Crd, &'static str)> {
        None
    }
}

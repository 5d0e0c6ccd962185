//! What a check runs and what it assumes of the cluster, as the command line or a spec gave it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::events::seconds;

/// A probe path, and whether it was asked for (a given path that 404s is a usage error; a
/// default one falls back to `/`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbePath {
    pub path: String,
    pub given: bool,
}

impl ProbePath {
    pub fn given(path: &str) -> Self {
        ProbePath {
            path: path.to_owned(),
            given: true,
        }
    }

    pub fn default_to(path: &str) -> Self {
        ProbePath {
            path: path.to_owned(),
            given: false,
        }
    }

    /// Whether a 404 on it means "use `/` instead".
    pub fn falls_back(&self) -> bool {
        !self.given && self.path != "/"
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckConfig {
    /// The app: program and arguments (`{port}` replaced), started as the local platform starts a
    /// replica (`PORT`, `BIND`, `HOSTNAME` in its environment).
    pub command: Vec<String>,
    /// Added to zdd's own environment.
    pub env: BTreeMap<String, String>,
    pub readiness: ProbePath,
    pub liveness: ProbePath,
    /// The readiness probe's period: readiness must fail within one after SIGTERM.
    #[serde(serialize_with = "seconds")]
    pub readiness_period: Duration,
    /// What the background traffic and the keep-alive client request.
    pub traffic_path: String,
    /// A request slow enough to be in flight at SIGTERM (`/work?ms=2000`); none: check 5 skipped.
    pub slow_path: Option<String>,
    /// How late the endpoint removal reaches the router.
    #[serde(serialize_with = "seconds")]
    pub propagation_delay: Duration,
    #[serde(serialize_with = "seconds")]
    pub pre_stop: Duration,
    #[serde(serialize_with = "seconds")]
    pub grace_period: Duration,
    /// Requests per second through the router.
    pub rate: u32,
    /// How long the app may take to listen and to turn ready.
    #[serde(serialize_with = "seconds")]
    pub start_timeout: Duration,
    /// Replica logs and the events file.
    pub run_dir: PathBuf,
    /// The replica beside the app that takes the traffic once the app is gone: zdd's reference
    /// service (`zdd serve`), which drops nothing, so every failure is the app's.
    #[serde(skip)]
    pub peer_command: Vec<String>,
}

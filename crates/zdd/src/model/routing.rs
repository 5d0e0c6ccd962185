//! How the data plane should route: the main route's policy and an optional preview route.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which replicas the main route sends traffic to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrafficPolicy {
    /// Every ready replica of every version, round robin: a Service that selects on `app` only
    /// (recreate, rolling update, canary by replicas).
    AllReady,
    /// Only the named version: a Service selector on `version` (blue-green).
    Only(String),
    /// A weighted split between versions (TraefikService `weighted`, HTTPRoute `backendRefs`).
    /// Weights are relative; within a version, round robin over its ready replicas.
    Weighted(Weights),
}

/// Versions and their relative weights, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights(pub Vec<(String, u32)>);

impl Weights {
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        self.0.iter().map(|(name, weight)| (name.as_str(), *weight))
    }

    /// The weight of `version` (0 when it is not listed).
    pub fn of(&self, version: &str) -> u32 {
        self.iter()
            .find(|(name, _)| *name == version)
            .map_or(0, |(_, weight)| weight)
    }
}

impl FromIterator<(String, u32)> for Weights {
    fn from_iter<I: IntoIterator<Item = (String, u32)>>(iter: I) -> Self {
        Weights(iter.into_iter().collect())
    }
}

/// `v1=90 v2=10`: the one way zdd writes weights (events, status, errors).
impl fmt::Display for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (name, weight)) in self.iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={weight}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TrafficPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrafficPolicy::AllReady => f.write_str("all ready replicas"),
            TrafficPolicy::Only(version) => write!(f, "only {version}"),
            TrafficPolicy::Weighted(weights) => write!(f, "{weights}"),
        }
    }
}

/// What the data plane should do. Applied as a whole by the platform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Routing {
    pub main: TrafficPolicy,
    /// A second entry point that reaches only this version (blue-green's preview, and the check
    /// that a version is reachable before it gets traffic).
    pub preview: Option<String>,
    /// Managed routes (A/B by header or cookie), tried in order before `main`: a request one of
    /// them matches goes to its version, whatever the weights say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_routes: Vec<HeaderRoute>,
    /// A shadow: a copy of (a share of) the requests `main` takes also goes to a version, whose
    /// answers are discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorRoute>,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            main: TrafficPolicy::AllReady,
            preview: None,
            header_routes: Vec::new(),
            mirror: None,
        }
    }
}

impl Routing {
    /// `main` alone: no preview and no managed route.
    pub fn main_only(main: TrafficPolicy) -> Routing {
        Routing {
            main,
            ..Routing::default()
        }
    }
}

/// Requests whose every match holds go to `version` (Argo Rollouts' `setHeaderRoute`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderRoute {
    pub name: String,
    pub matches: Vec<RequestMatch>,
    pub version: String,
}

/// A copy of `percent` % of the requests that `matches` take (all when empty) goes to `version`
/// (Argo Rollouts' `setMirrorRoute`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorRoute {
    pub name: String,
    pub version: String,
    pub percent: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RequestMatch>,
}

/// One condition on a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RequestMatch {
    Header {
        name: String,
        value: ValueMatch,
    },
    /// The value of the cookie `name` in the `Cookie` header.
    Cookie {
        name: String,
        value: ValueMatch,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ValueMatch {
    Exact(String),
    /// A regular expression that must match the whole value.
    Regex(String),
}

/// `main v1=90 v2=10, preview v2, route testers → v2, mirror shadow 50% → v2`: the one way zdd
/// describes a routing.
impl fmt::Display for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "main {}", self.main)?;
        if let Some(preview) = &self.preview {
            write!(f, ", preview {preview}")?;
        }
        for route in &self.header_routes {
            write!(f, ", route {} → {}", route.name, route.version)?;
        }
        if let Some(mirror) = &self.mirror {
            write!(
                f,
                ", mirror {} {}% → {}",
                mirror.name, mirror.percent, mirror.version
            )?;
        }
        Ok(())
    }
}

/// `X-Canary=always and cookie flavour~b.*`: matches as steps and events name them.
pub fn describe_matches(matches: &[RequestMatch]) -> String {
    let one = |m: &RequestMatch| {
        let (what, value) = match m {
            RequestMatch::Header { name, value } => (name.clone(), value),
            RequestMatch::Cookie { name, value } => (format!("cookie {name}"), value),
        };
        match value {
            ValueMatch::Exact(v) => format!("{what}={v}"),
            ValueMatch::Regex(r) => format!("{what}~{r}"),
        }
    };
    matches.iter().map(one).collect::<Vec<_>>().join(" and ")
}

//! zdd-router: an HTTP/1.1 reverse proxy driven by a route table that is replaced as a whole.
//!
//! The crate knows endpoints, rules, matchers and backends, nothing of processes, platforms or
//! rollouts: whoever runs it (zdd's local platform, `bench/router.sh`) builds a [`RouteTable`] and
//! hands it to [`BuiltinRouter::apply`]. A table is a [`Route`] per entry point; a route is a list
//! of [`Rule`]s, the first whose [`Matcher`] accepts the request wins; a rule splits traffic
//! between weighted [`Backend`]s, round robin over the [`Endpoint`]s inside a backend, and may
//! [`Mirror`] a share of its requests to other endpoints (shadow traffic).

pub mod builtin;

use std::fmt;
use std::net::SocketAddr;

pub use builtin::{BuiltinOptions, BuiltinRouter, MirrorOptions, MirrorStats};

/// One replica the router may send requests to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Pod name, sent back as `X-Zdd-Pod`.
    pub pod: String,
    /// Version name, sent back as `X-Zdd-Version`.
    pub version: String,
    pub addr: SocketAddr,
    /// The node it runs on, sent back as `X-Zdd-Node` when known.
    pub node: Option<String>,
}

/// Which requests a rule takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    /// Every request.
    Always,
    /// Requests for which every condition holds (A/B by header or cookie).
    All(Vec<Condition>),
}

impl Matcher {
    /// Requests whose header `name` is exactly `value`.
    pub fn header(name: &str, value: &str) -> Matcher {
        Matcher::All(vec![Condition::Header {
            name: name.to_owned(),
            value: ValueMatch::Exact(value.to_owned()),
        }])
    }
}

/// One condition on a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// A value of the header `name` matches (any of them, when it comes several times).
    Header { name: String, value: ValueMatch },
    /// The value of the cookie `name` (in the `Cookie` header) matches.
    Cookie { name: String, value: ValueMatch },
}

/// How a value is matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueMatch {
    Exact(String),
    /// A regular expression that must match the whole value. One that does not compile matches
    /// nothing (the spec refuses it before it gets here).
    Regex(String),
}

/// A group of endpoints that share one weight: a version, or every ready replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// A name for logs and for a Traefik service (`v1`, or `all`).
    pub name: String,
    /// Relative weight; 0 = no traffic.
    pub weight: u32,
    /// Round robin over these. Empty = requests that land here get 503.
    pub endpoints: Vec<Endpoint>,
}

/// Copies of a share of a rule's requests go to these endpoints; their answers are discarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    /// Names the copies' target and its counters (a version).
    pub name: String,
    /// Share of the rule's requests copied, 0 to 100.
    pub percent: u32,
    /// Round robin over these. Empty = every copy fails (counted).
    pub endpoints: Vec<Endpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub matcher: Matcher,
    pub backends: Vec<Backend>,
    pub mirror: Option<Mirror>,
}

/// One entry point's rules, tried in order. No matching rule = 404 (an ingress without a
/// matching rule).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    pub rules: Vec<Rule>,
}

impl Route {
    /// One rule that takes every request and splits it between `backends`.
    pub fn always(backends: Vec<Backend>) -> Route {
        Route {
            rules: vec![Rule {
                matcher: Matcher::Always,
                backends,
                mirror: None,
            }],
        }
    }

    /// Every endpoint any rule of this route names, mirrors' included.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.rules.iter().flat_map(|rule| {
            let mirrored = rule
                .mirror
                .iter()
                .flat_map(|mirror| mirror.endpoints.iter());
            rule.backends
                .iter()
                .flat_map(|backend| backend.endpoints.iter())
                .chain(mirrored)
        })
    }
}

/// Everything a router serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTable {
    /// The main entry point (users' and the probe's traffic).
    pub main: Route,
    /// The preview entry point (a second way in that reaches only the version under test).
    pub preview: Route,
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
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

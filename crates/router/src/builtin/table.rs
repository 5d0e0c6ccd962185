//! The route table as the hot path reads it: header values prepared once, rules and backends
//! picked with atomic counters (no lock per request).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use crate::{Matcher, Route, RouteTable};

pub const VERSION_HEADER: HeaderName = HeaderName::from_static("x-zdd-version");
pub const POD_HEADER: HeaderName = HeaderName::from_static("x-zdd-pod");
pub const NODE_HEADER: HeaderName = HeaderName::from_static("x-zdd-node");

/// An endpoint, prepared for the hot path.
pub(super) struct Target {
    pub(super) addr: SocketAddr,
    /// `Host` for a request that came without one (HTTP/1.0).
    pub(super) host: HeaderValue,
    pub(super) version: HeaderValue,
    pub(super) pod: HeaderValue,
    pub(super) node: Option<HeaderValue>,
}

pub(super) struct CompiledBackend {
    weight: u64,
    targets: Vec<Arc<Target>>,
    next: AtomicU64,
}

pub(super) enum CompiledMatcher {
    Always,
    Header(HeaderName, HeaderValue),
}

pub(super) struct CompiledRule {
    matcher: CompiledMatcher,
    backends: Vec<CompiledBackend>,
    total_weight: u64,
    requests: AtomicU64,
}

pub(super) struct CompiledRoute {
    rules: Vec<CompiledRule>,
}

pub(super) struct CompiledTable {
    pub(super) main: CompiledRoute,
    pub(super) preview: CompiledRoute,
    /// Bumped by each apply: a connection checked out under the same generation still has its
    /// endpoint in the table, with no lookup.
    pub(super) generation: u64,
    /// Every endpoint of either entry point, sorted.
    endpoints: Vec<SocketAddr>,
}

impl CompiledTable {
    /// Whether some rule still sends requests to `addr`.
    pub(super) fn routes_to(&self, addr: SocketAddr) -> bool {
        self.endpoints.binary_search(&addr).is_ok()
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) enum EntryPoint {
    Main,
    Preview,
}

impl CompiledMatcher {
    pub(super) fn matches(&self, headers: &HeaderMap) -> bool {
        match self {
            CompiledMatcher::Always => true,
            CompiledMatcher::Header(name, value) => headers.get(name) == Some(value),
        }
    }
}

impl CompiledRule {
    /// The weighted choice follows a Weyl sequence over the request count: deterministic, lock-free
    /// and evenly spread (90/10 interleaves instead of sending 90 in a row to one side).
    pub(super) fn pick(&self) -> Option<&Arc<Target>> {
        if self.total_weight == 0 {
            return None;
        }
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let fraction = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut slot = ((u128::from(fraction) * u128::from(self.total_weight)) >> 64) as u64;
        let backend = self.backends.iter().find(|backend| {
            if slot < backend.weight {
                return true;
            }
            slot -= backend.weight;
            false
        })?;
        if backend.targets.is_empty() {
            return None;
        }
        let index = backend.next.fetch_add(1, Ordering::Relaxed) % backend.targets.len() as u64;
        backend.targets.get(index as usize)
    }
}

impl CompiledRoute {
    /// The endpoint for a request; or 404 when no rule takes it (like an ingress without a
    /// matching rule), 503 when its rule has no endpoint for it.
    pub(super) fn pick(
        &self,
        headers: &HeaderMap,
    ) -> Result<Arc<Target>, (StatusCode, &'static str)> {
        let rule = self
            .rules
            .iter()
            .find(|rule| rule.matcher.matches(headers))
            .ok_or((StatusCode::NOT_FOUND, "no route\n"))?;
        rule.pick().cloned().ok_or((
            StatusCode::SERVICE_UNAVAILABLE,
            "no ready endpoint for this route\n",
        ))
    }
}

pub(super) fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

pub(super) fn compile_route(route: &Route) -> CompiledRoute {
    let rules = route
        .rules
        .iter()
        .map(|rule| {
            let matcher = match &rule.matcher {
                Matcher::Always => CompiledMatcher::Always,
                Matcher::Header { name, value } => match HeaderName::try_from(name.as_str()) {
                    Ok(name) => CompiledMatcher::Header(name, header_value(value)),
                    // A header name no request can carry matches nothing.
                    Err(_) => CompiledMatcher::Header(VERSION_HEADER, header_value("\u{1}")),
                },
            };
            let backends: Vec<CompiledBackend> = rule
                .backends
                .iter()
                .map(|backend| CompiledBackend {
                    weight: u64::from(backend.weight),
                    targets: backend
                        .endpoints
                        .iter()
                        .map(|endpoint| {
                            Arc::new(Target {
                                addr: endpoint.addr,
                                host: header_value(&endpoint.addr.to_string()),
                                version: header_value(&endpoint.version),
                                pod: header_value(&endpoint.pod),
                                node: endpoint.node.as_deref().map(header_value),
                            })
                        })
                        .collect(),
                    next: AtomicU64::new(0),
                })
                .collect();
            CompiledRule {
                matcher,
                total_weight: backends.iter().map(|b| b.weight).sum(),
                backends,
                requests: AtomicU64::new(0),
            }
        })
        .collect();
    CompiledRoute { rules }
}

pub(super) fn compile(table: &RouteTable, generation: u64) -> CompiledTable {
    let mut endpoints: Vec<SocketAddr> = table
        .main
        .endpoints()
        .chain(table.preview.endpoints())
        .map(|endpoint| endpoint.addr)
        .collect();
    endpoints.sort_unstable();
    endpoints.dedup();
    CompiledTable {
        main: compile_route(&table.main),
        preview: compile_route(&table.preview),
        generation,
        endpoints,
    }
}

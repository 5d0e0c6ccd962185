//! The route table as the hot path reads it: header values and matchers prepared once, rules and
//! backends picked with atomic counters (no lock per request).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use super::matcher::CompiledMatcher;
use super::mirror::CompiledMirror;
use super::mirror_stats::MirrorStats;
use crate::{Route, RouteTable};

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

pub(super) struct CompiledRule {
    matcher: CompiledMatcher,
    backends: Vec<CompiledBackend>,
    total_weight: u64,
    requests: AtomicU64,
    mirror: Option<Arc<CompiledMirror>>,
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

    pub(super) fn mirrors(&self) -> impl Iterator<Item = &CompiledMirror> {
        [&self.main, &self.preview]
            .into_iter()
            .flat_map(|route| route.rules.iter())
            .filter_map(|rule| rule.mirror.as_deref())
    }

    /// Each mirror's counters, in rule order (main route first).
    pub(super) fn mirror_stats(&self) -> Vec<MirrorStats> {
        self.mirrors().map(CompiledMirror::stats).collect()
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) enum EntryPoint {
    Main,
    Preview,
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

/// Where a request goes: its endpoint, and the mirror when it is to be copied.
pub(super) type Picked = (Arc<Target>, Option<Arc<CompiledMirror>>);

impl CompiledRoute {
    /// The endpoint for a request; or 404 when no rule takes it (like an ingress without a
    /// matching rule), 503 when its rule has no endpoint for it.
    pub(super) fn pick(&self, headers: &HeaderMap) -> Result<Picked, (StatusCode, &'static str)> {
        let rule = self
            .rules
            .iter()
            .find(|rule| rule.matcher.matches(headers))
            .ok_or((StatusCode::NOT_FOUND, "no route\n"))?;
        let target = rule.pick().cloned().ok_or((
            StatusCode::SERVICE_UNAVAILABLE,
            "no ready endpoint for this route\n",
        ))?;
        // The mirror's `Arc` is cloned only for a request it copies.
        let mirror = rule
            .mirror
            .as_ref()
            .filter(|mirror| mirror.takes())
            .cloned();
        Ok((target, mirror))
    }
}

pub(super) fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// `previous`: the table in force, whose mirrors' counters the same mirrors keep.
fn compile_route(route: &Route, previous: Option<&CompiledTable>) -> CompiledRoute {
    let rules = route
        .rules
        .iter()
        .map(|rule| {
            let matcher = CompiledMatcher::compile(&rule.matcher);
            let mirror = rule.mirror.as_ref().map(|mirror| {
                let previous = previous.into_iter().flat_map(CompiledTable::mirrors);
                Arc::new(CompiledMirror::compile(mirror, &rule.matcher, previous))
            });
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
                mirror,
            }
        })
        .collect();
    CompiledRoute { rules }
}

pub(super) fn compile(
    table: &RouteTable,
    generation: u64,
    previous: Option<&CompiledTable>,
) -> CompiledTable {
    let mut endpoints: Vec<SocketAddr> = table
        .main
        .endpoints()
        .chain(table.preview.endpoints())
        .map(|endpoint| endpoint.addr)
        .collect();
    endpoints.sort_unstable();
    endpoints.dedup();
    CompiledTable {
        main: compile_route(&table.main, previous),
        preview: compile_route(&table.preview, previous),
        generation,
        endpoints,
    }
}

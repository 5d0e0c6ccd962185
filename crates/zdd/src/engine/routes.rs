//! Managed routes (A/B by header or cookie, and a shadow), set and removed by name through
//! [`Engine::set_routing`], so the platform always applies the whole routing. They always lead
//! to the new version; [`Engine::retire`] and the rollback drop them with the main route. Any
//! routing change, whoever makes it, logs what it did to them ([`route_events`]) and the mirror's
//! counters before the mirror changes or goes.

use super::{Engine, EngineError, Which};
use crate::events::Event;
use crate::model::{HeaderRoute, MirrorRoute, MirrorStats, RequestMatch, Routing};
use crate::platform::Platform;

impl<P: Platform> Engine<'_, P> {
    /// Sets (or replaces) the header route `name`: requests that match go to the new version.
    pub async fn set_header_route(
        &mut self,
        name: &str,
        matches: Vec<RequestMatch>,
    ) -> Result<(), EngineError> {
        let route = HeaderRoute {
            name: name.to_string(),
            matches,
            version: self.name(Which::New),
        };
        let mut routing = self.routing.clone();
        match routing.header_routes.iter_mut().find(|r| r.name == name) {
            Some(existing) => *existing = route,
            None => routing.header_routes.push(route),
        }
        self.set_routing(routing).await
    }

    /// Removes the header route `name` (nothing to do when it is not set).
    pub async fn remove_header_route(&mut self, name: &str) -> Result<(), EngineError> {
        let mut routing = self.routing.clone();
        routing.header_routes.retain(|r| r.name != name);
        self.set_routing(routing).await
    }

    /// Sets the mirror route: a copy of `percent` % of the requests `matches` takes (all when
    /// empty) goes to the new version.
    pub async fn set_mirror_route(
        &mut self,
        name: &str,
        percent: u32,
        matches: Vec<RequestMatch>,
    ) -> Result<(), EngineError> {
        self.set_routing(Routing {
            mirror: Some(MirrorRoute {
                name: name.to_string(),
                version: self.name(Which::New),
                percent,
                matches,
            }),
            ..self.routing.clone()
        })
        .await
    }

    /// Removes the mirror route (its counters are logged first).
    pub async fn remove_mirror_route(&mut self) -> Result<(), EngineError> {
        self.set_routing(Routing {
            mirror: None,
            ..self.routing.clone()
        })
        .await
    }

    /// The last mirror counters read (when a mirror route changed or went), for the report.
    pub fn mirror_measured(&self) -> Option<&MirrorStats> {
        self.mirror_measured.as_ref()
    }

    /// Before `next` replaces the routing: when it changes or drops the mirror, the counters
    /// since the mirror was set are read and logged (a new mirror starts from zero). A platform
    /// that cannot count copies logs nothing; a failed read is no reason to stop a rollout.
    pub(super) async fn measure_mirror_before(&mut self, next: &Routing) {
        let Some(current) = &self.routing.mirror else {
            return;
        };
        if next.mirror.as_ref() == Some(current) {
            return;
        }
        let name = current.name.clone();
        let version = current.version.clone();
        let Ok(all) = self.platform.mirror_stats().await else {
            return;
        };
        let Some(stats) = all.into_iter().find(|s| s.version == version) else {
            return;
        };
        self.events.emit(Event::MirrorMeasured {
            name,
            stats: stats.clone(),
        });
        self.mirror_measured = Some(stats);
    }
}

/// What going from `before` to `after` did to the managed routes, as events: removals first.
pub(super) fn route_events(before: &Routing, after: &Routing) -> Vec<Event> {
    let mut events = Vec::new();
    for route in &before.header_routes {
        if !after.header_routes.iter().any(|r| r.name == route.name) {
            events.push(Event::HeaderRouteRemoved {
                name: route.name.clone(),
            });
        }
    }
    if let Some(mirror) = &before.mirror
        && after.mirror.as_ref().is_none_or(|m| m.name != mirror.name)
    {
        events.push(Event::MirrorRouteRemoved {
            name: mirror.name.clone(),
        });
    }
    for route in &after.header_routes {
        if !before.header_routes.contains(route) {
            events.push(Event::HeaderRouteSet {
                name: route.name.clone(),
                version: route.version.clone(),
                matches: route.matches.clone(),
            });
        }
    }
    if let Some(mirror) = &after.mirror
        && before.mirror.as_ref() != Some(mirror)
    {
        events.push(Event::MirrorRouteSet {
            name: mirror.name.clone(),
            version: mirror.version.clone(),
            percent: mirror.percent,
            matches: mirror.matches.clone(),
        });
    }
    events
}

//! Mirror services' names, kept across configurations: a mirror that stays the same (name,
//! percent, rule matcher) keeps its service, one that changes gets a new service, so Traefik's
//! counters for it (labelled by service) start from zero, as the builtin router's do.

use std::collections::BTreeMap;

use zdd_router::{Matcher, RouteTable};

/// A rule's mirror as Traefik serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct MirrorService {
    /// The `loadBalancer` service the copies go to.
    pub(super) service: String,
    /// The mirror's name (a version).
    pub(super) name: String,
}

/// Where a rule is: its entry point and its index there.
pub(super) type RuleAt = (&'static str, usize);

type Identity = (&'static str, String, u32, Matcher);

#[derive(Default)]
pub(super) struct MirrorNames {
    services: Vec<(Identity, String)>,
    serial: u64,
}

impl MirrorNames {
    /// The service of each mirror in `table`, by rule; mirrors that left are forgotten.
    pub(super) fn assign(&mut self, table: &RouteTable) -> BTreeMap<RuleAt, MirrorService> {
        let mut assigned = BTreeMap::new();
        let mut kept = Vec::new();
        for (entry_point, route) in [("web", &table.main), ("preview", &table.preview)] {
            for (index, rule) in route.rules.iter().enumerate() {
                let Some(mirror) = &rule.mirror else {
                    continue;
                };
                let identity = (
                    entry_point,
                    mirror.name.clone(),
                    mirror.percent,
                    rule.matcher.clone(),
                );
                let service = match self.services.iter().find(|(known, _)| *known == identity) {
                    Some((_, service)) => service.clone(),
                    None => {
                        self.serial += 1;
                        format!("mirror{}-{}", self.serial, mirror.name)
                    }
                };
                let at = (entry_point, index);
                let name = mirror.name.clone();
                assigned.insert(
                    at,
                    MirrorService {
                        service: service.clone(),
                        name,
                    },
                );
                kept.push((identity, service));
            }
        }
        self.services = kept;
        assigned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zdd_router::{Mirror, Route, Rule};

    fn table(percent: u32, endpoints: usize) -> RouteTable {
        let endpoint = |i: usize| zdd_router::Endpoint {
            pod: format!("v2-{i}"),
            version: "v2".into(),
            addr: format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
            node: None,
        };
        RouteTable {
            main: Route {
                rules: vec![Rule {
                    matcher: Matcher::Always,
                    backends: vec![],
                    mirror: Some(Mirror {
                        name: "v2".into(),
                        percent,
                        endpoints: (0..endpoints).map(endpoint).collect(),
                    }),
                }],
            },
            preview: Route::default(),
        }
    }

    #[test]
    fn a_mirror_keeps_its_service_until_it_changes() {
        let mut names = MirrorNames::default();
        let first = names.assign(&table(50, 1));
        assert_eq!(first[&("web", 0)].service, "mirror1-v2");
        // New endpoints: the same mirror.
        assert_eq!(names.assign(&table(50, 2)), first);
        let other = names.assign(&table(20, 2));
        assert_eq!(other[&("web", 0)].service, "mirror2-v2");
        // Gone, then back: a new one.
        assert!(names.assign(&RouteTable::default()).is_empty());
        assert_eq!(
            names.assign(&table(20, 2))[&("web", 0)].service,
            "mirror3-v2"
        );
    }
}

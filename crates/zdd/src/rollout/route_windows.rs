//! What the probe saw while each managed route was set: for a header route, each segment's
//! requests (an A/B test's testers should reach only the new version); for a mirror, all the
//! clients' requests (a shadow's copies are never answered to a client, so only the old version
//! answers them). Counted over the timeline buckets that lie wholly between the route's set and
//! removed events (the routers apply a routing before the engine logs it, so every request
//! scheduled in such a bucket went out under that route).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::events::{Event, Record};

/// The probe's requests while one managed route was set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteWindow {
    /// `header` or `mirror`.
    pub kind: &'static str,
    pub route: String,
    /// Whose requests: `segment NAME` or `clients` (every request of the probe).
    pub requests_of: String,
    pub from_s: f64,
    pub to_s: f64,
    pub total: u64,
    pub failed: u64,
    pub by_version: BTreeMap<String, u64>,
}

/// One window per header route and segment, and per mirror, in the order the routes were set.
pub fn route_windows(records: &[Record], report: &zdd_probe::Report) -> Vec<RouteWindow> {
    let end = records.last().map_or(0.0, |r| r.t_s);
    let mut windows = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let (kind, route) = match &record.event {
            Event::HeaderRouteSet { name, .. } => ("header", name),
            Event::MirrorRouteSet { name, .. } => ("mirror", name),
            _ => continue,
        };
        // Until the route goes or changes (set again), or the run ends.
        let to_s = records[index + 1..]
            .iter()
            .find(|r| match &r.event {
                Event::HeaderRouteRemoved { name } | Event::HeaderRouteSet { name, .. } => {
                    kind == "header" && name == route
                }
                Event::MirrorRouteRemoved { .. } | Event::MirrorRouteSet { .. } => kind == "mirror",
                _ => false,
            })
            .map_or(end, |r| r.t_s);
        let from_s = record.t_s;
        let inside = |t_s: f64| t_s >= from_s && t_s + report.bucket_s <= to_s;
        let window = |requests_of: String| RouteWindow {
            kind,
            route: route.clone(),
            requests_of,
            from_s,
            to_s,
            total: 0,
            failed: 0,
            by_version: BTreeMap::new(),
        };
        if kind == "header" {
            for segment in &report.segments {
                let mut w = window(format!("segment {}", segment.name));
                for bucket in segment.timeline.iter().filter(|b| inside(b.t_s)) {
                    w.total += bucket.total;
                    w.failed += bucket.failed;
                    add(&mut w.by_version, &bucket.by_version);
                }
                windows.push(w);
            }
        } else {
            let mut w = window("clients".to_string());
            for bucket in report.timeline.iter().filter(|b| inside(b.t_s)) {
                w.total += bucket.ok + bucket.failed;
                w.failed += bucket.failed;
                add(&mut w.by_version, &bucket.by_version);
            }
            windows.push(w);
        }
    }
    windows
}

fn add(to: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (version, n) in from {
        *to.entry(version.clone()).or_default() += n;
    }
}

/// `ab-header: while header route testers was set (5.0 s): segment testers: 200 requests, 0 failed, answered by v2 200`.
pub fn describe(strategy: &str, window: &RouteWindow) -> String {
    let versions: Vec<String> = window
        .by_version
        .iter()
        .map(|(version, n)| format!("{version} {n}"))
        .collect();
    format!(
        "{strategy}: while {} route {} was set ({:.1} s): {}: {} requests, {} failed, answered by {}\n",
        window.kind,
        window.route,
        window.to_s - window.from_s,
        window.requests_of,
        window.total,
        window.failed,
        if versions.is_empty() {
            "none".to_string()
        } else {
            versions.join(", ")
        }
    )
}

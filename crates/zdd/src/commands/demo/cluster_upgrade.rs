//! `zdd demo cluster-upgrade`: the same upgrade of 3 nodes (`examples/cluster-upgrade.yaml`) three
//! times, each with more of the hardening, and one table that compares them:
//! - packed: no anti-affinity, no disruption budget, no preStop (and an app that stops at once on
//!   SIGTERM): every replica lands on one node, and draining it is an outage;
//! - spread: `podAntiAffinity: required` alone: one replica per node, so a drain takes one at a
//!   time, but an evicted replica is still routed to after it stopped, and the next drain does not
//!   wait for the last one's replacement;
//! - hardened: the example as written: anti-affinity, `podDisruptionBudget: { maxUnavailable: 1 }`
//!   and a preStop sleep longer than the propagation delay.

use std::time::Duration;

use anyhow::Context;

use super::DemoArgs;
use crate::events::Event;
use crate::model::AntiAffinity;
use crate::rollout::session::resolve_self_command;
use crate::rollout::summary::Summary;
use crate::spec::Spec;

const EXAMPLE: &str = include_str!("../../../../../examples/cluster-upgrade.yaml");

/// One of the three runs: what it keeps of the hardening.
#[derive(Clone, Copy, Debug)]
struct Setup {
    name: &'static str,
    anti_affinity: AntiAffinity,
    disruption_budget: bool,
    pre_stop: bool,
}

const SETUPS: [Setup; 3] = [
    Setup {
        name: "packed",
        anti_affinity: AntiAffinity::None,
        disruption_budget: false,
        pre_stop: false,
    },
    Setup {
        name: "spread",
        anti_affinity: AntiAffinity::Required,
        disruption_budget: false,
        pre_stop: false,
    },
    Setup {
        name: "hardened",
        anti_affinity: AntiAffinity::Required,
        disruption_budget: true,
        pre_stop: true,
    },
];

/// The three specs, in the order they run, adjusted by the flags (rate, replicas, propagation
/// delay); there are as many nodes as replicas, at least 3.
pub fn specs(args: &DemoArgs) -> anyhow::Result<Vec<Spec>> {
    SETUPS.iter().map(|setup| spec(setup, args)).collect()
}

fn spec(setup: &Setup, args: &DemoArgs) -> anyhow::Result<Spec> {
    let mut spec = Spec::parse(EXAMPLE, "examples/cluster-upgrade.yaml")
        .context("examples/cluster-upgrade.yaml")?;
    resolve_self_command(&mut spec)?;
    spec.name = format!("upgrade-{}", setup.name);
    spec.app.replicas = args.replicas.max(1);
    spec.local.nodes = spec.app.replicas.max(3);
    spec.traffic.rate = args.rate.max(1);
    if args.connections.is_some() {
        spec.traffic.connections = args.connections;
    }
    if let Some(delay) = args.propagation_delay {
        spec.local.propagation_delay = delay;
        spec.app.pre_stop_sleep = spec.app.pre_stop_sleep.max(delay + Duration::from_secs(1));
    }
    spec.app.scheduling.anti_affinity = setup.anti_affinity;
    if !setup.disruption_budget {
        spec.app.disruption_budget = None;
    }
    if !setup.pre_stop {
        // No preStop, and an app that stops at once on SIGTERM, as most apps do.
        spec.app.pre_stop_sleep = Duration::ZERO;
        spec.app.env.insert("DRAIN_DELAY".into(), "0s".into());
    }
    if !setup.pre_stop || !setup.disruption_budget {
        // They drop requests: report them, and let the upgrade go to its end.
        spec.budget.max_failed = None;
    }
    Ok(spec)
}

/// The comparison: one row per run (`runs`: each spec with its summary), with what it kept of the
/// hardening and what it cost.
pub fn render_table(runs: &[(&Spec, &Summary)]) -> String {
    let mut out = String::from(
        "| run | podAntiAffinity | podDisruptionBudget | preStop | requests | failed | \
         longest outage | evictions refused (429) | duration | result |\n\
         |---|---|---|---|---:|---:|---:|---:|---:|---|\n",
    );
    for (spec, row) in runs {
        let refused = row
            .events
            .iter()
            .filter(|r| matches!(r.event, Event::EvictionRefused { .. }))
            .count();
        let budget = spec
            .app
            .disruption_budget
            .map_or("-".to_string(), |budget| budget.to_string());
        let pre_stop = match spec.app.pre_stop_sleep {
            Duration::ZERO => "-".to_string(),
            sleep => humantime::format_duration(sleep).to_string(),
        };
        // The unhardened runs have no failure budget: they drop requests and finish anyway.
        let result = if row.succeeded {
            "finished"
        } else {
            row.outcome.as_str()
        };
        out.push_str(&format!(
            "| {} | {} | {budget} | {pre_stop} | {} | {} | {:.2} s | {refused} | {:.1} s | {result} |\n",
            spec.name.trim_start_matches("upgrade-"),
            spec.app.scheduling.anti_affinity.name(),
            row.total,
            row.failed,
            row.longest_outage_s,
            row.duration_s,
        ));
    }
    out
}

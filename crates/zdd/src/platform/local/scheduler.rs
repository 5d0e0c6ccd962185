//! The scheduler's part: which simulated node a new replica is bound to, or why none takes it.
//!
//! Like kube-scheduler, it filters the nodes, then scores the ones left:
//! - a cordoned node takes nothing ("node(s) were unschedulable");
//! - `podAntiAffinity: required` refuses a node that holds a replica of the app, of any version,
//!   terminating ones included (they are still on the node until they are gone);
//! - a topology spread (`maxSkew`, `whenUnsatisfiable: DoNotSchedule`) refuses a node that would
//!   hold more than `maxSkew` replicas above the node with the fewest. Every node counts, cordoned
//!   ones too (Kubernetes' default `nodeTaintsPolicy: Ignore`), and terminating replicas do not;
//! - among the nodes left, `preferred` anti-affinity takes the one with the fewest replicas; with
//!   no preference the first node that fits takes it (replicas pack onto one node, as they do on
//!   a cluster whose other nodes came later or with a bin-packing scheduler).
//!
//! When no node fits, the pod stays pending with the reason kube-scheduler would give in its
//! `FailedScheduling` event: `0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s)
//! didn't match pod anti-affinity rules.`

use std::collections::BTreeMap;

use crate::model::{AntiAffinity, Scheduling};

/// One node as the scheduler sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    pub unschedulable: bool,
    /// Replicas of the app bound to it and not terminating.
    pub replicas: u32,
    /// Replicas of the app bound to it and terminating.
    pub terminating: u32,
}

/// The node for a new replica, or the `FailedScheduling` message.
pub fn place(nodes: &[NodeView], scheduling: &Scheduling) -> Result<String, String> {
    let fewest = nodes.iter().map(|n| n.replicas).min().unwrap_or(0);
    let mut refused: BTreeMap<&'static str, u32> = BTreeMap::new();
    let mut fitting = Vec::new();
    for node in nodes {
        let refusal = if node.unschedulable {
            Some("node(s) were unschedulable")
        } else if scheduling.anti_affinity == AntiAffinity::Required
            && node.replicas + node.terminating > 0
        {
            Some("node(s) didn't match pod anti-affinity rules")
        } else if scheduling
            .max_skew
            .is_some_and(|skew| node.replicas + 1 - fewest > skew)
        {
            Some("node(s) didn't match pod topology spread constraints")
        } else {
            None
        };
        match refusal {
            Some(reason) => *refused.entry(reason).or_default() += 1,
            None => fitting.push(node),
        }
    }
    let chosen = match scheduling.anti_affinity {
        AntiAffinity::Preferred => fitting
            .iter()
            .min_by_key(|n| n.replicas + n.terminating)
            .copied(),
        AntiAffinity::None | AntiAffinity::Required => fitting.first().copied(),
    };
    if let Some(node) = chosen {
        return Ok(node.name.clone());
    }
    // kube-scheduler sorts the reasons as text.
    let mut reasons: Vec<String> = refused
        .iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    reasons.sort();
    Err(format!(
        "0/{} nodes are available: {}.",
        nodes.len(),
        reasons.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, replicas: u32) -> NodeView {
        NodeView {
            name: name.into(),
            replicas,
            ..NodeView::default()
        }
    }

    fn with(anti_affinity: AntiAffinity, max_skew: Option<u32>) -> Scheduling {
        Scheduling {
            anti_affinity,
            max_skew,
        }
    }

    #[test]
    fn without_a_rule_replicas_pack_onto_the_first_node_that_fits() {
        let nodes = [node("node-1", 2), node("node-2", 0)];
        assert_eq!(
            place(&nodes, &with(AntiAffinity::None, None)),
            Ok("node-1".into())
        );
        let cordoned = [
            NodeView {
                unschedulable: true,
                ..node("node-1", 2)
            },
            node("node-2", 0),
        ];
        let placed = place(&cordoned, &with(AntiAffinity::None, None));
        assert_eq!(placed, Ok("node-2".into()));
    }

    #[test]
    fn preferred_anti_affinity_takes_the_emptiest_node() {
        let nodes = [node("node-1", 1), node("node-2", 2), node("node-3", 0)];
        let placed = place(&nodes, &with(AntiAffinity::Preferred, None));
        assert_eq!(placed, Ok("node-3".into()));
        // Preferred only: a full cluster still takes the replica.
        let full = [node("node-1", 1), node("node-2", 1)];
        let placed = place(&full, &with(AntiAffinity::Preferred, None));
        assert_eq!(placed, Ok("node-1".into()));
    }

    #[test]
    fn required_anti_affinity_counts_terminating_replicas_and_says_why_it_waits() {
        let nodes = [
            NodeView {
                unschedulable: true,
                ..node("node-1", 0)
            },
            node("node-2", 1),
            NodeView {
                terminating: 1,
                ..node("node-3", 0)
            },
        ];
        assert_eq!(
            place(&nodes, &with(AntiAffinity::Required, None)),
            Err(
                "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match \
                 pod anti-affinity rules."
                    .into()
            )
        );
    }

    #[test]
    fn topology_spread_keeps_the_skew_and_ignores_terminating_replicas() {
        let nodes = [node("node-1", 1), node("node-2", 0)];
        let placed = place(&nodes, &with(AntiAffinity::None, Some(1)));
        assert_eq!(placed, Ok("node-2".into()));
        // A cordoned, empty node still counts: nothing may go where it would make a skew of 2.
        let cordoned = [
            node("node-1", 1),
            NodeView {
                unschedulable: true,
                ..node("node-2", 0)
            },
        ];
        let err = place(&cordoned, &with(AntiAffinity::None, Some(1))).unwrap_err();
        assert!(
            err.contains("1 node(s) didn't match pod topology spread constraints"),
            "{err}"
        );
        let leaving = [
            NodeView {
                terminating: 1,
                ..node("node-1", 0)
            },
            node("node-2", 0),
        ];
        let placed = place(&leaving, &with(AntiAffinity::None, Some(1)));
        assert_eq!(placed, Ok("node-1".into()));
    }
}

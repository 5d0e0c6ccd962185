//! How a running rollout is steered: `zdd promote`, `zdd abort`, the budget and signals all end
//! up in a [`Control`], and the engine writes the [`RolloutStatus`] that `zdd status` shows.
//! `zdd drain` and `zdd uncordon` reach it too, as [`NodeRequest`]s for whoever serves the run's
//! nodes. (The socket that carries these between processes is `rollout::control_socket`.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::model::{NodeStatus, PodStatus, Routing, VersionStatus};
use crate::sync::lock;

/// Why a rollout stops before its end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Interrupt {
    /// `zdd abort`: roll back.
    Abort { reason: String },
    /// More failed requests than the budget allows: roll back.
    BudgetExceeded { failed: u64, max_failed: u64 },
    /// Ctrl-C or SIGTERM to zdd: stop at once, no rollback; the platform is shut down.
    Signal { name: String },
    /// A metric of the analysis failed (or stayed inconclusive) more often than allowed: roll
    /// back.
    AnalysisFailed { metric: String, reason: String },
}

impl std::fmt::Display for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interrupt::Abort { reason } => write!(f, "aborted: {reason}"),
            Interrupt::BudgetExceeded { failed, max_failed } => write!(
                f,
                "budget exceeded: {failed} failed requests, at most {max_failed} allowed"
            ),
            Interrupt::Signal { name } => write!(f, "interrupted by {name}"),
            Interrupt::AnalysisFailed { metric, reason } => {
                write!(f, "analysis failed: {metric}: {reason}")
            }
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    #[default]
    Starting,
    Progressing,
    /// Waiting for `zdd promote`.
    Paused,
    RollingBack,
    Succeeded,
    /// Rolled back (abort, budget, a failed step).
    RolledBack,
    Failed,
    Interrupted,
}

/// What `zdd status` shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutStatus {
    pub name: String,
    pub strategy: String,
    pub phase: Phase,
    pub from: String,
    pub to: String,
    /// The current step, for example `step 2/4: setWeight 40`.
    pub step: Option<String>,
    pub message: Option<String>,
    pub elapsed_s: f64,
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub by_version: BTreeMap<String, u64>,
    pub versions: Vec<VersionStatus>,
    /// Replicas as of the last change the engine made (pid and port on the local platform).
    pub pods: Vec<PodStatus>,
    /// The nodes and their replicas, as of the last change the engine made.
    #[serde(default)]
    pub nodes: Vec<NodeStatus>,
    pub routing: Option<serde_json::Value>,
    /// The analysis so far: each metric's passed, failed and inconclusive measurements.
    #[serde(default)]
    pub analysis: Option<String>,
}

impl RolloutStatus {
    pub fn set_routing(&mut self, routing: &Routing) {
        self.routing = serde_json::to_value(routing).ok();
    }
}

/// What `zdd drain` or `zdd uncordon` asks of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeAction {
    Drain { eviction_timeout: Duration },
    Uncordon,
}

/// A node request on its way to the run, answered when done: the pods a drain evicted, or why it
/// failed.
pub struct NodeRequest {
    pub node: String,
    pub action: NodeAction,
    pub reply: oneshot::Sender<Result<Vec<String>, String>>,
}

/// The shared handle: the engine reads interrupts and promotions from it and writes its status.
#[derive(Clone)]
pub struct Control {
    interrupt: watch::Sender<Option<Interrupt>>,
    promotions: watch::Sender<u64>,
    status: Arc<Mutex<RolloutStatus>>,
    node_requests: mpsc::UnboundedSender<NodeRequest>,
    /// Taken once, by the run that serves node requests.
    node_inbox: Arc<Mutex<Option<mpsc::UnboundedReceiver<NodeRequest>>>>,
}

impl Default for Control {
    fn default() -> Self {
        Self::new()
    }
}

impl Control {
    pub fn new() -> Self {
        let (node_requests, inbox) = mpsc::unbounded_channel();
        Control {
            interrupt: watch::Sender::new(None),
            promotions: watch::Sender::new(0),
            status: Arc::new(Mutex::new(RolloutStatus::default())),
            node_requests,
            node_inbox: Arc::new(Mutex::new(Some(inbox))),
        }
    }

    /// Asks the run to drain or uncordon `node`, and waits for the answer.
    pub async fn node_request(
        &self,
        node: &str,
        action: NodeAction,
    ) -> Result<Vec<String>, String> {
        let (reply, answer) = oneshot::channel();
        let request = NodeRequest {
            node: node.to_owned(),
            action,
            reply,
        };
        let ended = || "the run ended before it answered".to_string();
        self.node_requests.send(request).map_err(|_| ended())?;
        answer.await.unwrap_or_else(|_| Err(ended()))
    }

    /// The node requests, for the run that serves them (`None` once taken).
    pub fn take_node_requests(&self) -> Option<mpsc::UnboundedReceiver<NodeRequest>> {
        lock(&self.node_inbox).take()
    }

    /// Stops the rollout; the first interrupt wins.
    pub fn interrupt(&self, why: Interrupt) {
        self.interrupt.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(why);
                true
            } else {
                false
            }
        });
    }

    pub fn interrupted(&self) -> Option<Interrupt> {
        self.interrupt.borrow().clone()
    }

    pub fn subscribe_interrupt(&self) -> watch::Receiver<Option<Interrupt>> {
        self.interrupt.subscribe()
    }

    /// Lets a pause that waits for a person go on. Refused unless the rollout is paused.
    pub fn promote(&self) -> Result<(), String> {
        let phase = self.status().phase;
        if phase != Phase::Paused {
            return Err(format!(
                "the rollout is not waiting for promote (phase: {phase:?})"
            ));
        }
        self.promotions.send_modify(|n| *n += 1);
        Ok(())
    }

    pub fn subscribe_promotions(&self) -> watch::Receiver<u64> {
        self.promotions.subscribe()
    }

    pub fn status(&self) -> RolloutStatus {
        lock(&self.status).clone()
    }

    pub fn update(&self, change: impl FnOnce(&mut RolloutStatus)) {
        change(&mut lock(&self.status));
    }
}

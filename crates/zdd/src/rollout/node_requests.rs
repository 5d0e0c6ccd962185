//! `zdd drain` and `zdd uncordon` against a running rollout: each request that reaches the control
//! socket runs on the platform's nodes beside the strategy, as `kubectl drain` runs beside a
//! Deployment's rollout, and is answered when it is done.

use std::sync::Arc;

use tokio::task::{JoinHandle, JoinSet};

use crate::engine::control::{Control, NodeAction, NodeRequest};
use crate::platform::NodeMaintenance;

/// Serves the run's node requests until dropped; a request still running then is dropped too.
pub(super) struct NodeRequests(Option<JoinHandle<()>>);

impl NodeRequests {
    pub(super) fn serve(control: &Control, nodes: Arc<dyn NodeMaintenance>) -> NodeRequests {
        let Some(mut inbox) = control.take_node_requests() else {
            return NodeRequests(None);
        };
        NodeRequests(Some(tokio::spawn(async move {
            let mut running = JoinSet::new();
            loop {
                tokio::select! {
                    request = inbox.recv() => match request {
                        Some(request) => {
                            running.spawn(answer(request, nodes.clone()));
                        }
                        None => return,
                    },
                    // Reap finished requests (a panic in one must not go unnoticed).
                    Some(Err(err)) = running.join_next(), if !running.is_empty() => {
                        tracing::warn!("a node request failed: {err}");
                    }
                }
            }
        })))
    }
}

impl Drop for NodeRequests {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

async fn answer(request: NodeRequest, nodes: Arc<dyn NodeMaintenance>) {
    let NodeRequest {
        node,
        action,
        reply,
    } = request;
    let result = match action {
        NodeAction::Drain { eviction_timeout } => nodes.drain(&node, eviction_timeout).await,
        NodeAction::Uncordon => nodes.uncordon(&node).map(|()| Vec::new()),
    };
    // The asker may have gone (Ctrl-C on `zdd drain`): the drain is done anyway.
    let _ = reply.send(result.map_err(|err| err.to_string()));
}

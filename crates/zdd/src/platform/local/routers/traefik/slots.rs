//! Pod slots: which pod uses which of Traefik's pod entry points, kept across configurations.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use zdd_router::{Endpoint, RouteTable};

use super::POD_SLOTS;

/// How long a pod's slot router outlives the pod's removal from the endpoints. A request Traefik
/// already sent to the slot must still find its router there (else Traefik answers 404), the way
/// Kubernetes keeps terminating endpoints around for a while.
const SLOT_LINGER: Duration = Duration::from_secs(5);

/// A pod's slot, and what its slot router needs after the pod left the endpoints.
#[derive(Clone)]
pub(super) struct SlotEntry {
    pub(super) slot: usize,
    pub(super) endpoint: Endpoint,
    /// When the pod left the endpoints; `None` while it is in them.
    removed_at: Option<Instant>,
}

/// Which pod uses which slot; kept across configurations so a pod keeps its slot.
#[derive(Default)]
pub(super) struct Slots {
    by_pod: BTreeMap<String, SlotEntry>,
}

impl Slots {
    /// Gives every endpoint in `table` a pod slot (keeping existing ones); a slot whose pod left
    /// stays taken for [`SLOT_LINGER`], then is freed. Returns every slot taken, by pod.
    pub(super) fn assign(&mut self, table: &RouteTable) -> BTreeMap<String, SlotEntry> {
        let endpoints: BTreeMap<&str, &Endpoint> = [&table.main, &table.preview]
            .iter()
            .flat_map(|route| route.rules.iter())
            .flat_map(|rule| rule.backends.iter())
            .flat_map(|backend| backend.endpoints.iter())
            .map(|endpoint| (endpoint.pod.as_str(), endpoint))
            .collect();
        let now = Instant::now();
        self.by_pod.retain(|pod, entry| {
            if endpoints.contains_key(pod.as_str()) {
                entry.removed_at = None;
            } else if entry.removed_at.is_none() {
                entry.removed_at = Some(now);
            }
            entry
                .removed_at
                .is_none_or(|removed| now.duration_since(removed) < SLOT_LINGER)
        });
        for (pod, endpoint) in &endpoints {
            if let Some(entry) = self.by_pod.get_mut(*pod) {
                entry.endpoint = (*endpoint).clone();
                continue;
            }
            let used: Vec<usize> = self.by_pod.values().map(|entry| entry.slot).collect();
            match (0..POD_SLOTS).find(|slot| !used.contains(slot)) {
                Some(free) => {
                    let entry = SlotEntry {
                        slot: free,
                        endpoint: (*endpoint).clone(),
                        removed_at: None,
                    };
                    self.by_pod.insert((*pod).to_owned(), entry);
                }
                None => tracing::warn!(pod, "no free traefik pod slot: no X-Zdd-* headers"),
            }
        }
        self.by_pod.clone()
    }
}

/// The name of a slot's entry point (and of its router, middleware and service).
pub(super) fn slot_name(slot: usize) -> String {
    format!("pod{slot:02}")
}

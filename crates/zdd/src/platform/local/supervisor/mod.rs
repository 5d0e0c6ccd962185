//! The kubelet's part: the replica set, every version's replicas, scaled, counted and stopped.
//!
//! Each replica ("pod") is one tokio task that owns its child process (`pod`): it waits until the
//! scheduler binds it to a node (`nodes`), spawns the command in a process group of its own, runs
//! the readiness and liveness probes with Kubernetes semantics (`probes`), restarts the process
//! when it exits by itself or fails liveness, and runs the termination sequence (`termination`:
//! preStop sleep, SIGTERM to the group, SIGKILL when the grace period that started with preStop
//! ends) when the replica is scaled away or evicted. Like a ReplicaSet, a version whose replica
//! was evicted gets a new one at once.

mod nodes;
mod pod;
mod probes;
mod termination;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zdd_router::Endpoint;

use super::ports::pick_port;
use super::process_groups::ProcessGroups;
use crate::events::{Event, EventLog};
use crate::model::{PodStatus, VersionStatus, VersionTemplate};
use crate::platform::{PlatformError, Result};
use crate::sync::lock;
pub use nodes::EvictError;
use pod::run_pod;
pub use termination::END_OF_RUN_GRACE;

/// One replica.
struct Pod {
    name: String,
    version: String,
    port: u16,
    template: Arc<VersionTemplate>,
    created: Instant,
    state: Mutex<PodState>,
    /// Cancelled when the replica must stop.
    stop: CancellationToken,
    /// Set with `stop` when the whole platform ends: skip the preStop sleep.
    fast_stop: AtomicBool,
    /// Cancelled when the whole platform ends: a termination under way gives way to the
    /// end-of-run stop (see `termination`).
    end_of_run: CancellationToken,
    /// Notified when the scheduler binds the pod to a node.
    bound: Notify,
    task: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct PodState {
    pid: Option<u32>,
    /// When readiness last turned true; `None` = not ready.
    ready_since: Option<Instant>,
    terminating: bool,
    restarts: u32,
    /// The node it is bound to; `None` while pending.
    node: Option<String>,
    /// Why no node takes it (the last `FailedScheduling` message), while pending.
    pending: Option<String>,
}

impl Pod {
    fn is_ready(&self) -> bool {
        let state = lock(&self.state);
        state.ready_since.is_some() && !state.terminating
    }

    fn is_terminating(&self) -> bool {
        lock(&self.state).terminating
    }
}

struct VersionEntry {
    name: String,
    desired: u32,
    next_index: u32,
    /// The template its new replicas get (the last one scaled with).
    template: Arc<VersionTemplate>,
}

/// A simulated node.
struct Node {
    name: String,
    /// Cordoned: the scheduler binds nothing to it.
    unschedulable: bool,
}

struct State {
    versions: Vec<VersionEntry>,
    pods: Vec<Arc<Pod>>,
    nodes: Vec<Node>,
    /// The port the next new replica of a version gets instead of a fresh one.
    pinned_ports: BTreeMap<String, u16>,
}

struct Shared {
    run_dir: PathBuf,
    events: EventLog,
    groups: Arc<ProcessGroups>,
    state: Mutex<State>,
    /// Bumped on every change the endpoint controller must see (ready, terminating, gone).
    changes: watch::Sender<u64>,
}

impl Shared {
    fn changed(&self) {
        self.changes.send_modify(|generation| *generation += 1);
    }
}

/// The replicas of every version. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
}

impl Supervisor {
    /// A replica set on `nodes` simulated nodes, named `node-1`, `node-2`, ...
    pub fn new(
        run_dir: PathBuf,
        events: EventLog,
        groups: Arc<ProcessGroups>,
        nodes: u32,
    ) -> Result<Self> {
        std::fs::create_dir_all(run_dir.join("pods"))?;
        let nodes = (1..=nodes.max(1))
            .map(|n| Node {
                name: format!("node-{n}"),
                unschedulable: false,
            })
            .collect();
        Ok(Supervisor {
            shared: Arc::new(Shared {
                run_dir,
                events,
                groups,
                state: Mutex::new(State {
                    versions: Vec::new(),
                    pods: Vec::new(),
                    nodes,
                    pinned_ports: BTreeMap::new(),
                }),
                changes: watch::channel(0).0,
            }),
        })
    }

    /// Notified on every readiness, termination or removal of a replica.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Sets the desired replica count of `template`'s version: starts new replicas or stops the
    /// surplus (unready ones first, then the newest, like a ReplicaSet).
    pub fn scale(&self, template: &VersionTemplate, replicas: u32) -> Result<()> {
        if template.command.is_empty() {
            return Err(PlatformError::Other(format!(
                "version {}: no command to run",
                template.name
            )));
        }
        let template = Arc::new(template.clone());
        let (started, stopping, scheduled) = {
            let mut state = lock(&self.shared.state);
            let index = match state.versions.iter().position(|v| v.name == template.name) {
                Some(index) => index,
                None => {
                    state.versions.push(VersionEntry {
                        name: template.name.clone(),
                        desired: 0,
                        next_index: 1,
                        template: template.clone(),
                    });
                    state.versions.len() - 1
                }
            };
            state.versions[index].desired = replicas;
            state.versions[index].template = template;
            let Changes { started, stopping } = reconcile(&mut state, index)?;
            (started, stopping, state.schedule_pending())
        };
        self.start_and_stop(started, &stopping, scheduled);
        Ok(())
    }

    /// Starts the tasks of new replicas (after the scheduler's events), stops the surplus.
    fn start_and_stop(&self, started: Vec<Arc<Pod>>, stopping: &[Arc<Pod>], scheduled: Vec<Event>) {
        scheduled
            .into_iter()
            .for_each(|event| self.shared.events.emit(event));
        for pod in started {
            let task = tokio::spawn(run_pod(self.shared.clone(), pod.clone()));
            *lock(&pod.task) = Some(task);
        }
        for pod in stopping {
            self.begin_termination(pod, false);
        }
    }

    /// The next new replica of `version` listens on `port`, whoever had it before: a process
    /// that replaces one on the same address (a container restarted in its pod, a pod on the
    /// host's network), which must be able to listen there at once.
    pub fn pin_next_port(&self, version: &str, port: u16) {
        lock(&self.shared.state)
            .pinned_ports
            .insert(version.to_owned(), port);
    }

    fn begin_termination(&self, pod: &Pod, fast: bool) {
        {
            let mut state = lock(&pod.state);
            if state.terminating {
                if fast {
                    pod.fast_stop.store(true, Ordering::SeqCst);
                }
                return;
            }
            state.terminating = true;
        }
        pod.fast_stop.store(fast, Ordering::SeqCst);
        self.stop_marked(pod);
    }

    /// Runs the termination of a replica already marked terminating, and says so.
    fn stop_marked(&self, pod: &Pod) {
        self.shared.events.emit(Event::PodTerminating {
            pod: pod.name.clone(),
        });
        pod.stop.cancel();
        self.shared.changed();
        // A terminating replica no longer counts for the topology spread.
        self.reschedule();
    }

    /// Counts of one version (zeros for a version never scaled).
    pub fn version_status(&self, version: &str) -> VersionStatus {
        let state = lock(&self.shared.state);
        let desired = state
            .versions
            .iter()
            .find(|v| v.name == version)
            .map_or(0, |v| v.desired);
        count(&state, version, desired)
    }

    pub fn statuses(&self) -> (Vec<VersionStatus>, Vec<PodStatus>) {
        let state = lock(&self.shared.state);
        let versions = state
            .versions
            .iter()
            .map(|v| count(&state, &v.name, v.desired))
            .collect();
        let pods = state
            .pods
            .iter()
            .map(|pod| {
                let pod_state = lock(&pod.state);
                PodStatus {
                    name: pod.name.clone(),
                    version: pod.version.clone(),
                    pid: pod_state.pid,
                    port: Some(pod.port),
                    ready: pod_state.ready_since.is_some() && !pod_state.terminating,
                    terminating: pod_state.terminating,
                    restarts: pod_state.restarts,
                    node: pod_state.node.clone(),
                    pending: pod_state.pending.clone(),
                }
            })
            .collect();
        (versions, pods)
    }

    /// The endpoint controller's view: the ready, non-terminating replicas of every version that
    /// was ever scaled (an empty list for a version with none).
    pub fn ready_endpoints(&self) -> BTreeMap<String, Vec<Endpoint>> {
        let state = lock(&self.shared.state);
        let mut endpoints: BTreeMap<String, Vec<Endpoint>> = state
            .versions
            .iter()
            .map(|v| (v.name.clone(), Vec::new()))
            .collect();
        for pod in state.pods.iter().filter(|pod| pod.is_ready()) {
            endpoints
                .entry(pod.version.clone())
                .or_default()
                .push(Endpoint {
                    pod: pod.name.clone(),
                    version: pod.version.clone(),
                    addr: SocketAddr::from((Ipv4Addr::LOCALHOST, pod.port)),
                    node: lock(&pod.state).node.clone(),
                });
        }
        endpoints
    }

    /// Longest termination grace period of any replica.
    pub fn longest_grace_period(&self) -> Duration {
        let state = lock(&self.shared.state);
        state
            .pods
            .iter()
            .map(|pod| pod.template.termination_grace_period)
            .max()
            .unwrap_or_default()
    }

    /// How long [`Supervisor::shutdown`] lets any replica run before SIGKILL.
    pub fn end_of_run_grace(&self) -> Duration {
        self.longest_grace_period().min(END_OF_RUN_GRACE)
    }

    /// Stops every replica for the end of the run, when no request can reach them any more: no
    /// preStop, no drain (SIGTERM, again every 100 ms, SIGKILL after [`END_OF_RUN_GRACE`] or the
    /// grace period if shorter; a termination already under way switches to this too), and waits
    /// for them, at most `bound`; whatever is left then is SIGKILLed.
    pub async fn shutdown(&self, bound: Duration) {
        let pods: Vec<Arc<Pod>> = lock(&self.shared.state).pods.clone();
        for pod in &pods {
            self.begin_termination(pod, true);
            pod.end_of_run.cancel();
        }
        let tasks: Vec<JoinHandle<()>> = pods
            .iter()
            .filter_map(|pod| lock(&pod.task).take())
            .collect();
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(bound, all).await.is_err() {
            tracing::warn!("replicas still running after {bound:?}: killing them");
        }
        self.abort_all();
        // Only the replicas' groups: the router's process is stopped after this, by its owner.
        for pod in &pods {
            if let Some(pid) = lock(&pod.state).pid {
                self.shared.groups.signal(pid, Signal::SIGKILL);
            }
        }
    }

    /// Aborts every replica's task (no restart can happen after this); the processes themselves
    /// are left to [`ProcessGroups::kill_all`].
    pub fn abort_all(&self) {
        self.shared.groups.close();
        let pods: Vec<Arc<Pod>> = lock(&self.shared.state).pods.clone();
        for pod in pods {
            if let Some(task) = lock(&pod.task).take() {
                task.abort();
            }
        }
    }
}

/// What a reconciliation changes: the replicas it created and those it stops.
struct Changes {
    started: Vec<Arc<Pod>>,
    stopping: Vec<Arc<Pod>>,
}

/// Like a ReplicaSet: new replicas up to the version's desired count of replicas that are not
/// terminating, or the surplus to stop (unready before ready, then newest first). New replicas
/// are pending until [`State::schedule_pending`] binds them.
fn reconcile(state: &mut State, index: usize) -> Result<Changes> {
    let (name, wanted) = (
        state.versions[index].name.clone(),
        state.versions[index].desired,
    );
    let mut active: Vec<Arc<Pod>> = state
        .pods
        .iter()
        .filter(|pod| pod.version == name && !pod.is_terminating())
        .cloned()
        .collect();
    let wanted = wanted as usize;
    let (mut started, mut stopping) = (Vec::new(), Vec::new());
    if active.len() < wanted {
        for _ in active.len()..wanted {
            let port = match state.pinned_ports.remove(&state.versions[index].name) {
                Some(port) => port,
                None => free_port()?,
            };
            let entry = &mut state.versions[index];
            let pod = Arc::new(Pod {
                name: format!("{}-{}", entry.name, entry.next_index),
                version: entry.name.clone(),
                port,
                template: entry.template.clone(),
                created: Instant::now(),
                state: Mutex::new(PodState::default()),
                stop: CancellationToken::new(),
                fast_stop: AtomicBool::new(false),
                end_of_run: CancellationToken::new(),
                bound: Notify::new(),
                task: Mutex::new(None),
            });
            entry.next_index += 1;
            state.pods.push(pod.clone());
            started.push(pod);
        }
    } else if active.len() > wanted {
        let surplus = active.len() - wanted;
        active.sort_by_key(|pod| (pod.is_ready(), std::cmp::Reverse(pod.created)));
        stopping.extend(active.into_iter().take(surplus));
    }
    Ok(Changes { started, stopping })
}

fn count(state: &State, version: &str, desired: u32) -> VersionStatus {
    let mut status = VersionStatus {
        name: version.to_owned(),
        desired,
        ..VersionStatus::default()
    };
    for pod in state.pods.iter().filter(|pod| pod.version == version) {
        let pod_state = lock(&pod.state);
        status.running += 1;
        if pod_state.terminating {
            status.terminating += 1;
        } else if pod_state
            .ready_since
            .is_some_and(|since| since.elapsed() >= pod.template.min_ready)
        {
            status.ready += 1;
        }
    }
    status
}

/// A free loopback port for a new replica; it keeps it across restarts, like a pod its IP.
fn free_port() -> Result<u16> {
    Ok(pick_port(Ipv4Addr::LOCALHOST.into())?)
}

//! The kubelet's part: runs each replica as a child process, probes it, restarts it, stops it.
//!
//! Each replica ("pod") is one tokio task that owns its child process: it spawns the command in a
//! process group of its own, runs the readiness and liveness probes with Kubernetes semantics,
//! restarts the process when it exits by itself or fails liveness, and runs the termination
//! sequence (preStop sleep, SIGTERM to the group, SIGKILL when the grace period that started with
//! preStop ends) when the replica is scaled away.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zdd_router::Endpoint;

use super::ports::pick_port;
use super::process_groups::ProcessGroups;
use crate::events::{Event, EventLog};
use crate::http_get;
use crate::model::{PodStatus, ProbeSpec, VersionStatus, VersionTemplate};
use crate::platform::{PlatformError, Result};
use crate::sync::lock;

/// Restart back-off after a replica exits by itself: doubles from this...
const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(250);
/// ...up to this (Kubernetes uses 10 s to 5 min; a local demo wants to see the restart).
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A replica that ran this long before exiting restarts with the shortest back-off again.
const RESTART_BACKOFF_RESET: Duration = Duration::from_secs(10);
/// When preStop used up the grace period, SIGTERM still gets this long before SIGKILL (the
/// kubelet's one-time 2 s extension).
const GRACE_EXTENSION: Duration = Duration::from_secs(2);
/// At the end of a run, SIGKILL comes this long after the first SIGTERM (or after the replica's
/// grace period, if shorter): no request can reach a replica any more, so there is nothing to
/// drain, only a process to let exit cleanly.
pub const END_OF_RUN_GRACE: Duration = Duration::from_secs(2);
/// At the end of a run, SIGTERM is sent again this often: the reference service (like many
/// servers) drains on the first signal and stops at once on the second.
const END_OF_RUN_SIGTERM_EVERY: Duration = Duration::from_millis(100);

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
    /// end-of-run stop (see [`stop_at_end_of_run`]).
    end_of_run: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct PodState {
    pid: Option<u32>,
    /// When readiness last turned true; `None` = not ready.
    ready_since: Option<Instant>,
    terminating: bool,
    restarts: u32,
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
}

#[derive(Default)]
struct State {
    versions: Vec<VersionEntry>,
    pods: Vec<Arc<Pod>>,
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
    pub fn new(run_dir: PathBuf, events: EventLog, groups: Arc<ProcessGroups>) -> Result<Self> {
        std::fs::create_dir_all(run_dir.join("pods"))?;
        Ok(Supervisor {
            shared: Arc::new(Shared {
                run_dir,
                events,
                groups,
                state: Mutex::new(State::default()),
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
        let mut started = Vec::new();
        let mut stopping = Vec::new();
        {
            let mut state = lock(&self.shared.state);
            let index = match state.versions.iter().position(|v| v.name == template.name) {
                Some(index) => index,
                None => {
                    state.versions.push(VersionEntry {
                        name: template.name.clone(),
                        desired: 0,
                        next_index: 1,
                    });
                    state.versions.len() - 1
                }
            };
            state.versions[index].desired = replicas;
            let mut active: Vec<Arc<Pod>> = state
                .pods
                .iter()
                .filter(|pod| pod.version == template.name && !pod.is_terminating())
                .cloned()
                .collect();
            let wanted = replicas as usize;
            if active.len() < wanted {
                for _ in active.len()..wanted {
                    let entry = &mut state.versions[index];
                    let name = format!("{}-{}", entry.name, entry.next_index);
                    entry.next_index += 1;
                    let pod = Arc::new(Pod {
                        name,
                        version: template.name.clone(),
                        port: free_port()?,
                        template: template.clone(),
                        created: Instant::now(),
                        state: Mutex::new(PodState::default()),
                        stop: CancellationToken::new(),
                        fast_stop: AtomicBool::new(false),
                        end_of_run: CancellationToken::new(),
                        task: Mutex::new(None),
                    });
                    state.pods.push(pod.clone());
                    started.push(pod);
                }
            } else if active.len() > wanted {
                // Unready before ready, then newest first.
                let surplus = active.len() - wanted;
                active.sort_by_key(|pod| (pod.is_ready(), std::cmp::Reverse(pod.created)));
                stopping.extend(active.into_iter().take(surplus));
            }
        }
        for pod in started {
            let task = tokio::spawn(run_pod(self.shared.clone(), pod.clone()));
            *lock(&pod.task) = Some(task);
        }
        for pod in &stopping {
            self.begin_termination(pod, false);
        }
        Ok(())
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
        self.shared.events.emit(Event::PodTerminating {
            pod: pod.name.clone(),
        });
        pod.stop.cancel();
        self.shared.changed();
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

/// Why the wait on a replica's process ended.
enum ProcessEnd {
    Exited(io::Result<ExitStatus>),
    LivenessFailed,
    Stop,
}

/// One replica's whole life: start, probe, restart, stop.
async fn run_pod(shared: Arc<Shared>, pod: Arc<Pod>) {
    let mut backoff = RESTART_BACKOFF_MIN;
    loop {
        if pod.stop.is_cancelled() {
            break;
        }
        let started_at = Instant::now();
        let mut child = match spawn_replica(&shared, &pod) {
            Ok(child) => child,
            Err(err) => {
                shared.events.emit(Event::PodFailedToStart {
                    pod: pod.name.clone(),
                    error: err.to_string(),
                });
                lock(&pod.state).restarts += 1;
                if wait_or_stop(&pod, backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
                continue;
            }
        };
        let pid = child.id();
        lock(&pod.state).pid = pid;
        shared.events.emit(Event::PodStarted {
            pod: pod.name.clone(),
        });

        let outcome = {
            let readiness = readiness_loop(&shared, &pod);
            let liveness = async {
                match &pod.template.liveness {
                    Some(spec) => liveness_failure(spec, pod.port).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                status = child.wait() => ProcessEnd::Exited(status),
                () = liveness => ProcessEnd::LivenessFailed,
                () = pod.stop.cancelled() => ProcessEnd::Stop,
                () = readiness => unreachable!("the readiness loop never ends"),
            }
        };
        set_unready(&shared, &pod);
        let status = match outcome {
            ProcessEnd::Exited(status) => status,
            ProcessEnd::LivenessFailed => {
                shared.events.emit(Event::PodRestartedByLiveness {
                    pod: pod.name.clone(),
                });
                terminate_unless_run_ends(&shared, &pod, &mut child, true).await
            }
            ProcessEnd::Stop if pod.end_of_run.is_cancelled() => {
                stop_at_end_of_run(&shared, &pod, &mut child).await
            }
            ProcessEnd::Stop => {
                let pre_stop = !pod.fast_stop.load(Ordering::SeqCst);
                terminate_unless_run_ends(&shared, &pod, &mut child, pre_stop).await
            }
        };
        if let Some(pid) = pid {
            shared.groups.release(pid);
        }
        lock(&pod.state).pid = None;
        shared.events.emit(Event::PodExited {
            pod: pod.name.clone(),
            how: describe_exit(&status),
        });
        if pod.stop.is_cancelled() {
            break;
        }
        lock(&pod.state).restarts += 1;
        if started_at.elapsed() >= RESTART_BACKOFF_RESET {
            backoff = RESTART_BACKOFF_MIN;
        }
        if wait_or_stop(&pod, backoff).await {
            break;
        }
        backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
    }
    lock(&shared.state)
        .pods
        .retain(|other| !Arc::ptr_eq(other, &pod));
    shared.changed();
}

/// Sleeps `delay` unless the replica is stopped first; true = stopped.
async fn wait_or_stop(pod: &Pod, delay: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        () = pod.stop.cancelled() => true,
    }
}

fn describe_exit(status: &io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("code {code}"),
            (None, Some(signal)) => match Signal::try_from(signal) {
                Ok(signal) => format!("signal {}", signal.as_str()),
                Err(_) => format!("signal {signal}"),
            },
            (None, None) => status.to_string(),
        },
        Err(err) => format!("unknown: {err}"),
    }
}

fn spawn_replica(shared: &Shared, pod: &Pod) -> io::Result<Child> {
    let (program, args) = pod
        .template
        .command
        .split_first()
        .ok_or_else(|| io::Error::other("empty command"))?;
    let port = pod.port.to_string();
    let log_path = shared
        .run_dir
        .join("pods")
        .join(format!("{}.log", pod.name));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut command = Command::new(program);
    command
        .args(args.iter().map(|arg| arg.replace("{port}", &port)))
        .envs(&pod.template.env)
        .env("PORT", &port)
        .env("BIND", "127.0.0.1")
        // What Kubernetes gives a container: its pod's name as the host name.
        .env("HOSTNAME", &pod.name)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    shared.groups.spawn(&mut command)
}

/// [`terminate`], unless the run ends meanwhile: then [`stop_at_end_of_run`] takes over.
async fn terminate_unless_run_ends(
    shared: &Shared,
    pod: &Pod,
    child: &mut Child,
    run_pre_stop: bool,
) -> io::Result<ExitStatus> {
    let graceful = tokio::select! {
        status = terminate(shared, pod, child, run_pre_stop) => Some(status),
        () = pod.end_of_run.cancelled() => None,
    };
    match graceful {
        Some(status) => status,
        None => stop_at_end_of_run(shared, pod, child).await,
    }
}

/// Stops the replica's process at the end of the run, when the router is gone and no request can
/// reach it: SIGTERM to its group, again every [`END_OF_RUN_SIGTERM_EVERY`] (a server that drains
/// on the first signal stops on the next one), SIGKILL after [`END_OF_RUN_GRACE`] or the grace
/// period if shorter.
async fn stop_at_end_of_run(
    shared: &Shared,
    pod: &Pod,
    child: &mut Child,
) -> io::Result<ExitStatus> {
    let Some(pid) = child.id() else {
        return child.wait().await;
    };
    let kill_at =
        tokio::time::Instant::now() + pod.template.termination_grace_period.min(END_OF_RUN_GRACE);
    // The first tick is immediate.
    let mut sigterm = tokio::time::interval(END_OF_RUN_SIGTERM_EVERY);
    loop {
        tokio::select! {
            status = child.wait() => return status,
            _ = sigterm.tick() => shared.groups.signal(pid, Signal::SIGTERM),
            () = tokio::time::sleep_until(kill_at) => {
                tracing::info!(pod = pod.name, "end of run: SIGKILL");
                shared.groups.signal(pid, Signal::SIGKILL);
                return child.wait().await;
            }
        }
    }
}

/// Stops the replica's process: preStop sleep (when asked), SIGTERM to its group, SIGKILL when the
/// grace period, counted from the start of preStop, ends.
async fn terminate(
    shared: &Shared,
    pod: &Pod,
    child: &mut Child,
    run_pre_stop: bool,
) -> io::Result<ExitStatus> {
    let template = &pod.template;
    let started = tokio::time::Instant::now();
    let mut kill_at = started + template.termination_grace_period;
    if run_pre_stop && !template.pre_stop_sleep.is_zero() {
        let pre_stop = template
            .pre_stop_sleep
            .min(template.termination_grace_period);
        tokio::select! {
            status = child.wait() => return status,
            () = tokio::time::sleep(pre_stop) => {}
        }
        if template.pre_stop_sleep >= template.termination_grace_period {
            kill_at = tokio::time::Instant::now() + GRACE_EXTENSION;
        }
    }
    let Some(pid) = child.id() else {
        return child.wait().await;
    };
    shared.groups.signal(pid, Signal::SIGTERM);
    tokio::select! {
        status = child.wait() => status,
        () = tokio::time::sleep_until(kill_at) => {
            tracing::info!(pod = pod.name, "grace period over: SIGKILL");
            shared.groups.signal(pid, Signal::SIGKILL);
            child.wait().await
        }
    }
}

fn set_unready(shared: &Shared, pod: &Pod) {
    let was_ready = lock(&pod.state).ready_since.take().is_some();
    if was_ready {
        if !pod.is_terminating() {
            shared.events.emit(Event::PodUnready {
                pod: pod.name.clone(),
            });
        }
        shared.changed();
    }
}

/// Runs the readiness probe for as long as the process lives, flipping the replica's readiness
/// after `success_threshold` successes / `failure_threshold` failures in a row.
async fn readiness_loop(shared: &Shared, pod: &Pod) {
    let spec = &pod.template.readiness;
    tokio::time::sleep(spec.initial_delay).await;
    let mut ticker = probe_ticker(spec);
    let (mut successes, mut failures) = (0u32, 0u32);
    loop {
        ticker.tick().await;
        let ok = http_probe(pod.port, &spec.path, spec.timeout).await;
        let ready = lock(&pod.state).ready_since.is_some();
        if ok {
            successes += 1;
            failures = 0;
            if !ready && successes >= spec.success_threshold.max(1) {
                let mut state = lock(&pod.state);
                if state.terminating {
                    continue;
                }
                state.ready_since = Some(Instant::now());
                drop(state);
                shared.events.emit(Event::PodReady {
                    pod: pod.name.clone(),
                });
                shared.changed();
            }
        } else {
            failures += 1;
            successes = 0;
            if ready && failures >= spec.failure_threshold.max(1) {
                set_unready(shared, pod);
            }
        }
    }
}

/// Returns when the liveness probe has failed `failure_threshold` times in a row.
async fn liveness_failure(spec: &ProbeSpec, port: u16) {
    tokio::time::sleep(spec.initial_delay).await;
    let mut ticker = probe_ticker(spec);
    let mut failures = 0u32;
    loop {
        ticker.tick().await;
        if http_probe(port, &spec.path, spec.timeout).await {
            failures = 0;
        } else {
            failures += 1;
            if failures >= spec.failure_threshold.max(1) {
                return;
            }
        }
    }
}

fn probe_ticker(spec: &ProbeSpec) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(spec.period.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// One HTTP GET like the kubelet's: a fresh connection, success = a status from 200 to 399
/// within `timeout`.
pub async fn http_probe(port: u16, path: &str, timeout: Duration) -> bool {
    let url = format!("http://127.0.0.1:{port}{path}");
    http_get::get(&url, "kube-probe/zdd", timeout)
        .await
        .is_ok_and(|answer| answer.is_success())
}

//! One replica's life: spawn its process, probe it, restart it with back-off, stop it.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::process::{Child, Command};

use super::probes::{liveness_failure, readiness_loop, set_ready};
use super::termination::stop;
use super::{Pod, Shared};
use crate::events::{Event, PodExit};
use crate::sync::lock;

/// Restart back-off after a replica exits by itself: doubles from this...
const RESTART_BACKOFF_MIN: Duration = Duration::from_millis(250);
/// ...up to this (Kubernetes uses 10 s to 5 min; a local demo wants to see the restart).
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A replica that ran this long before exiting restarts with the shortest back-off again.
const RESTART_BACKOFF_RESET: Duration = Duration::from_secs(10);

/// Why the wait on a replica's process ended.
enum ProcessEnd {
    Exited(io::Result<ExitStatus>),
    LivenessFailed,
    Stop,
}

/// One replica's whole life: start, probe, restart, stop.
pub(super) async fn run_pod(shared: Arc<Shared>, pod: Arc<Pod>) {
    let mut backoff = RESTART_BACKOFF_MIN;
    if !bound_or_stopped(&pod).await {
        leave(&shared, &pod);
        return;
    }
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

        let outcome = tokio::select! {
            status = child.wait() => ProcessEnd::Exited(status),
            () = liveness_failure(&pod) => ProcessEnd::LivenessFailed,
            () = pod.stop.cancelled() => ProcessEnd::Stop,
            () = readiness_loop(&shared, &pod) => unreachable!("the readiness loop never ends"),
        };
        set_ready(&shared, &pod, false);
        let status = match outcome {
            ProcessEnd::Exited(status) => status,
            ProcessEnd::LivenessFailed => {
                shared.events.emit(Event::PodRestartedByLiveness {
                    pod: pod.name.clone(),
                });
                stop(&shared, &pod, &mut child, true).await
            }
            ProcessEnd::Stop => {
                let pre_stop = !pod.fast_stop.load(Ordering::SeqCst);
                stop(&shared, &pod, &mut child, pre_stop).await
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
    leave(&shared, &pod);
}

/// The replica is gone: out of the replica set, and a pending one may fit on its node now.
fn leave(shared: &Shared, pod: &Arc<Pod>) {
    let scheduled = {
        let mut state = lock(&shared.state);
        state.pods.retain(|other| !Arc::ptr_eq(other, pod));
        // Gone from its node: a pending replica may fit there now.
        state.schedule_pending()
    };
    scheduled
        .into_iter()
        .for_each(|event| shared.events.emit(event));
    shared.changed();
}

/// Waits until the scheduler binds the replica to a node (true) or it is stopped while pending.
async fn bound_or_stopped(pod: &Pod) -> bool {
    loop {
        if lock(&pod.state).node.is_some() {
            return true;
        }
        // A notification between the look and this wait is kept (`notify_one`).
        tokio::select! {
            () = pod.bound.notified() => {}
            () = pod.stop.cancelled() => return false,
        }
    }
}

/// Sleeps `delay` unless the replica is stopped first; true = stopped.
async fn wait_or_stop(pod: &Pod, delay: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        () = pod.stop.cancelled() => true,
    }
}

fn describe_exit(status: &io::Result<ExitStatus>) -> PodExit {
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => PodExit::Code(code),
            (None, Some(signal)) => PodExit::Signal(match Signal::try_from(signal) {
                Ok(signal) => signal.as_str().to_owned(),
                Err(_) => signal.to_string(),
            }),
            (None, None) => PodExit::Unknown(status.to_string()),
        },
        Err(err) => PodExit::Unknown(err.to_string()),
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
        // What Kubernetes gives a container: its pod's name as the host name, and its node's
        // name where the manifest asks for it (the downward API's `spec.nodeName`).
        .env("HOSTNAME", &pod.name)
        .env(
            "NODE_NAME",
            lock(&pod.state).node.clone().unwrap_or_default(),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    shared.groups.spawn(&mut command)
}

//! Stopping a replica: preStop sleep, SIGTERM, SIGKILL after the grace period; the end-of-run stop.

use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Child;

use super::{Pod, Shared};
use crate::events::Event;

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

/// Stops the replica's process: [`terminate`], unless the run has ended or ends meanwhile: then
/// [`stop_at_end_of_run`] takes over.
pub(super) async fn stop(
    shared: &Shared,
    pod: &Pod,
    child: &mut Child,
    run_pre_stop: bool,
) -> io::Result<ExitStatus> {
    let graceful = tokio::select! {
        biased;
        () = pod.end_of_run.cancelled() => None,
        status = terminate(shared, pod, child, run_pre_stop) => Some(status),
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
    signal_and_report(shared, pod, pid, Signal::SIGTERM);
    tokio::select! {
        status = child.wait() => status,
        () = tokio::time::sleep_until(kill_at) => {
            signal_and_report(shared, pod, pid, Signal::SIGKILL);
            child.wait().await
        }
    }
}

/// One signal of the termination sequence, in the events: when SIGTERM came is what `zdd check`
/// measures the app's shutdown from. Stamped just before the signal goes, so that nothing the app
/// does in answer can seem to come first.
fn signal_and_report(shared: &Shared, pod: &Pod, pid: u32, signal: Signal) {
    shared.events.emit(Event::PodSignalled {
        pod: pod.name.clone(),
        signal: signal.as_str().to_owned(),
    });
    shared.groups.signal(pid, signal);
}

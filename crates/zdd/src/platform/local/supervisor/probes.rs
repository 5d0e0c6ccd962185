//! The kubelet's HTTP probes: readiness makes a replica ready or unready, liveness restarts it.

use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use super::{Pod, Shared};
use crate::events::Event;
use crate::http_get;
use crate::model::ProbeSpec;
use crate::sync::lock;

/// Runs the readiness probe for as long as the process lives, flipping the replica's readiness.
pub(super) async fn readiness_loop(shared: &Shared, pod: &Pod) {
    probe_until(&pod.template.readiness, pod.port, |ready| {
        set_ready(shared, pod, ready);
        false
    })
    .await;
}

/// Returns when the liveness probe has failed; never without one.
pub(super) async fn liveness_failure(pod: &Pod) {
    match &pod.template.liveness {
        Some(spec) => probe_until(spec, pod.port, |alive| !alive).await,
        None => std::future::pending().await,
    }
}

/// Probes `port` with Kubernetes semantics (after `initial_delay`, one HTTP GET every `period`)
/// until `done(verdict)`: the verdict is true after `success_threshold` successes in a row, false
/// after `failure_threshold` failures in a row (and again on each probe while that holds).
async fn probe_until(spec: &ProbeSpec, port: u16, mut done: impl FnMut(bool) -> bool) {
    tokio::time::sleep(spec.initial_delay).await;
    let mut ticker = tokio::time::interval(spec.period.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut last, mut in_a_row) = (true, 0u32);
    loop {
        ticker.tick().await;
        let ok = http_probe(port, &spec.path, spec.timeout).await;
        in_a_row = if ok == last {
            in_a_row.saturating_add(1)
        } else {
            1
        };
        last = ok;
        let threshold = if ok {
            spec.success_threshold
        } else {
            spec.failure_threshold
        };
        if in_a_row >= threshold.max(1) && done(ok) {
            return;
        }
    }
}

/// Turns the replica ready or unready (a terminating one does not turn ready) and tells the
/// endpoint controller; only a replica that is not terminating emits an event.
pub(super) fn set_ready(shared: &Shared, pod: &Pod, ready: bool) {
    let terminating = {
        let mut state = lock(&pod.state);
        if state.ready_since.is_some() == ready || (ready && state.terminating) {
            return;
        }
        state.ready_since = ready.then(Instant::now);
        state.terminating
    };
    if !terminating {
        let pod = pod.name.clone();
        let event = if ready {
            Event::PodReady { pod }
        } else {
            Event::PodUnready { pod }
        };
        shared.events.emit(event);
    }
    shared.changed();
}

/// One HTTP GET like the kubelet's: a fresh connection, success = a status from 200 to 399
/// within `timeout`.
async fn http_probe(port: u16, path: &str, timeout: Duration) -> bool {
    let url = format!("http://127.0.0.1:{port}{path}");
    http_get::get(&url, "kube-probe/zdd", timeout)
        .await
        .is_ok_and(|answer| answer.is_success())
}

//! Faults during a real rollout: a replica SIGKILLed, Ctrl-C to zdd, a rollout over budget.
//! After each, the process table must hold nothing this test started.

use std::process::Output;
use std::time::Duration;

use crate::support::{Run, serve_spec};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use zdd_test_support::run::{text, wait_with_deadline};

/// The pause waits for `zdd promote`: the test acts during it however slow the machine is.
const CANARY_WITH_PAUSE: &str =
    "  canary:\n    steps:\n      - setReplicas: { from: 2, to: 1 }\n      - pause: {}";

/// Waits for the canary's pause and returns the pid of a ready, non-terminating v1 replica.
fn v1_pid_during_pause(run: &Run, run_dir: &std::path::Path) -> (String, i32) {
    let status = run.wait_status(run_dir, Duration::from_secs(60), |s| {
        s["step"].as_str().unwrap_or_default().contains("pause")
            && s["pods"].as_array().is_some_and(|pods| {
                pods.iter()
                    .any(|p| p["version"] == "v1" && p["ready"] == true && p["pid"].is_u64())
            })
    });
    let pod = status["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["version"] == "v1" && p["ready"] == true && p["terminating"] == false)
        .unwrap_or_else(|| panic!("no ready v1 pod: {status}"));
    (
        pod["name"].as_str().unwrap().to_string(),
        pod["pid"].as_u64().unwrap() as i32,
    )
}

/// Starts the canary rollout with `maxFailed: max_failed`, SIGKILLs a serving v1 replica during
/// its pause, waits until the probe counted failed requests, promotes (a rollout over budget has
/// rolled back by then and refuses it) and waits for zdd to end. Returns the killed pod and zdd's
/// output.
fn kill_a_v1_replica_during_the_pause(run: &Run, max_failed: &str) -> (String, Output) {
    let (child, run_dir) =
        run.start_rollout("c", &serve_spec("c", CANARY_WITH_PAUSE, 2, max_failed));
    let (pod, pid) = v1_pid_during_pause(run, &run_dir);
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("SIGKILL the replica");
    // Until the failures are counted, or the rollout no longer answers (it rolled back and ended).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while let Some(status) = run.status(&run_dir) {
        if status["failed"].as_u64().unwrap_or(0) > 0 || status["phase"] != "paused" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failure counted: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Refused when the budget already stopped the rollout: the exit code tells.
    let _ = run.control("promote", &run_dir);
    (pod, wait_with_deadline(child, Duration::from_secs(90)))
}

#[test]
fn a_sigkilled_replica_does_not_stop_the_rollout_and_its_failures_are_reported() {
    let run = Run::new("faults-sigkill");
    // No budget limit: the rollout goes on and the report counts the failures.
    let (pod, output) = kill_a_v1_replica_during_the_pause(&run, "null");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let result = run.read_json("out.json");
    assert_eq!(result["succeeded"], true, "{}", result["outcome"]);
    let failed = result["failed"].as_u64().unwrap();
    assert!(failed > 0, "killing a serving replica dropped nothing?");
    // The report says when: an outage starts within a couple of seconds of the replica's death.
    let died = result["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "pod_exited" && e["pod"] == pod.as_str())
        .unwrap_or_else(|| panic!("no exit event for {pod}"))["t_s"]
        .as_f64()
        .unwrap();
    let outages = result["outages"].as_array().unwrap();
    assert!(
        outages.iter().any(|o| {
            let start = o["start_s"].as_f64().unwrap();
            start >= died - 0.5 && start <= died + 2.0 && o["failed"].as_u64().unwrap() > 0
        }),
        "no outage near {died}s: {outages:#?}"
    );
    run.assert_nothing_left();
}

#[test]
fn over_budget_the_rollout_rolls_back_exits_1_and_leaves_nothing() {
    let run = Run::new("faults-budget");
    let (_, output) = kill_a_v1_replica_during_the_pause(&run, "0");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let result = run.read_json("out.json");
    let outcome = result["outcome"].as_str().unwrap();
    assert!(outcome.contains("budget exceeded"), "{outcome}");
    assert!(outcome.contains("rolled back"), "{outcome}");
    run.assert_nothing_left();
}

#[test]
fn ctrl_c_stops_the_traffic_and_every_replica() {
    let run = Run::new("faults-sigint");
    let spec = serve_spec("c", CANARY_WITH_PAUSE, 2, "0");
    let (child, run_dir) = run.start_rollout("c", &spec);
    v1_pid_during_pause(&run, &run_dir);
    assert!(run.leftovers().len() >= 4, "{:#?}", run.leftovers());
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT zdd");
    // The pause would wait for ever: only the signal ends the run, with exit 1 as documented.
    let output = wait_with_deadline(child, Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("interrupted"),
        "{}",
        text(&output.stdout)
    );
    run.assert_nothing_left();
}

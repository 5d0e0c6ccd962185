//! `zdd promote`, `zdd abort` and `zdd status` against a real `zdd rollout` of the reference
//! service (real replicas, real router, real traffic).

mod rollout_support;

use std::time::Duration;

use rollout_support::{Run, serve_spec, text, wait_with_deadline};

#[test]
fn blue_green_waits_for_promote_then_switches_without_dropping() {
    let run = Run::new("control-promote");
    let spec = serve_spec(
        "bg",
        "  blueGreen: { autoPromote: false, previewChecks: 3 }",
        2,
        "0",
    );
    run.write("bg.yaml", &spec);
    let run_dir = run.path().join("runs/bg");
    let child = run.spawn(&[
        "rollout",
        "-f",
        "bg.yaml",
        "--run-dir",
        "runs/bg",
        "--json",
        "out.json",
    ]);
    let paused = run.wait_status(&run_dir, Duration::from_secs(60), |s| {
        s["phase"] == "paused"
    });
    assert_eq!(paused["strategy"], "blue-green");
    assert!(
        paused["step"]
            .as_str()
            .unwrap_or_default()
            .contains("promote"),
        "{paused}"
    );
    // Paused: only v1 serves the main route, v2 is up beside it.
    let ready = |name: &str| {
        paused["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .map(|v| v["ready"].as_u64().unwrap())
    };
    assert_eq!(ready("v2"), Some(2), "{paused}");
    // The process-table check sees this run's processes: zdd and its four replicas.
    let running = run.leftovers();
    assert!(running.len() >= 5, "{running:#?}");
    let human = run
        .zdd(&["status", "--run-dir"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(
        text(&human.stdout).contains("Paused"),
        "{}",
        text(&human.stdout)
    );

    let promote = run
        .zdd(&["promote", "--run-dir"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(promote.status.success(), "{}", text(&promote.stderr));

    let output = wait_with_deadline(child, Duration::from_secs(90));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let result = run.read_json("out.json");
    assert_eq!(result["succeeded"], true);
    assert_eq!(result["failed"], 0, "{}", result["outages"]);
    let labels: Vec<&str> = result["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    assert!(labels.contains(&"promoted"), "{labels:#?}");
    assert!(
        labels
            .iter()
            .any(|l| l.starts_with("selector switched to v2"))
    );
    assert!(
        labels
            .iter()
            .any(|l| l.starts_with("data plane: no request reached v1"))
    );
    assert!(result["by_version"]["v2"].as_u64().unwrap() > 0);
    run.assert_nothing_left();
}

#[test]
fn abort_sends_traffic_back_to_the_old_version_and_exits_1() {
    let run = Run::new("control-abort");
    let spec = serve_spec(
        "cw",
        "  canary:\n    trafficRouting: weight\n    steps:\n      - setWeight: 50\n      - pause: {}",
        2,
        "0",
    );
    run.write("cw.yaml", &spec);
    let run_dir = run.path().join("runs/cw");
    let child = run.spawn(&[
        "rollout",
        "-f",
        "cw.yaml",
        "--run-dir",
        "runs/cw",
        "--json",
        "out.json",
    ]);
    run.wait_status(&run_dir, Duration::from_secs(60), |s| {
        s["phase"] == "paused" && s["by_version"]["v2"].as_u64().unwrap_or(0) > 0
    });
    let abort = run
        .zdd(&["abort", "--run-dir"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(abort.status.success(), "{}", text(&abort.stderr));

    let output = wait_with_deadline(child, Duration::from_secs(90));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let result = run.read_json("out.json");
    assert_eq!(result["succeeded"], false);
    assert!(
        result["outcome"].as_str().unwrap().contains("rolled back"),
        "{}",
        result["outcome"]
    );
    // Rolling back is a rollout too: no request dropped.
    assert_eq!(result["failed"], 0, "{}", result["outages"]);
    let labels: Vec<&str> = result["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    assert!(labels.contains(&"rolled back to v1"), "{labels:#?}");
    assert!(
        labels
            .iter()
            .any(|l| l.starts_with("data plane: no request reached v2"))
    );
    run.assert_nothing_left();
    // The socket is gone with the rollout: a late command fails clearly.
    let late = run
        .zdd(&["promote", "--run-dir"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert_eq!(late.status.code(), Some(1));
    assert!(
        text(&late.stderr).contains("no rollout answers"),
        "{}",
        text(&late.stderr)
    );
}

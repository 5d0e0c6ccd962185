//! `zdd promote`, `zdd abort` and `zdd status` against a real `zdd rollout` of the reference
//! service (real replicas, real router, real traffic).

use std::time::Duration;

use crate::support::{Run, event_position, events, serve_spec};
use serde_json::json;
use zdd_test_support::run::{text, wait_with_deadline};

#[test]
fn blue_green_waits_for_promote_then_switches_without_dropping() {
    let run = Run::new("control-promote");
    let spec = serve_spec(
        "bg",
        "  blueGreen: { autoPromote: false, previewChecks: 3 }",
        2,
        "0",
    );
    let (child, run_dir) = run.start_rollout("bg", &spec);
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
    let human = run.control("status", &run_dir);
    assert!(
        text(&human.stdout).contains("Paused"),
        "{}",
        text(&human.stdout)
    );

    let promote = run.control("promote", &run_dir);
    assert!(promote.status.success(), "{}", text(&promote.stderr));

    let output = wait_with_deadline(child, Duration::from_secs(90));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let result = run.read_json("out.json");
    assert_eq!(result["succeeded"], true);
    assert_eq!(result["failed"], 0, "{}", result["outages"]);
    let all = events(&result);
    assert!(
        event_position(&result, "promoted", json!({})).is_some(),
        "{all:#?}"
    );
    let switched = json!({"routing": {"main": {"only": "v2"}, "preview": null}});
    assert!(
        event_position(&result, "routing_set", switched).is_some(),
        "{all:#?}"
    );
    assert!(
        event_position(&result, "drained", json!({"version": "v1"})).is_some(),
        "{all:#?}"
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
    let (child, run_dir) = run.start_rollout("cw", &spec);
    run.wait_status(&run_dir, Duration::from_secs(60), |s| {
        s["phase"] == "paused" && s["by_version"]["v2"].as_u64().unwrap_or(0) > 0
    });
    let abort = run.control("abort", &run_dir);
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
    let all = events(&result);
    assert!(
        event_position(&result, "rolled_back", json!({"version": "v1"})).is_some(),
        "{all:#?}"
    );
    assert!(
        event_position(&result, "drained", json!({"version": "v2"})).is_some(),
        "{all:#?}"
    );
    run.assert_nothing_left();
    // The socket is gone with the rollout: a late command fails clearly.
    let late = run.control("promote", &run_dir);
    assert_eq!(late.status.code(), Some(1));
    assert!(
        text(&late.stderr).contains("no rollout answers"),
        "{}",
        text(&late.stderr)
    );
}

#[test]
fn abort_during_blue_green_preview_removes_the_preview_route() {
    let run = Run::new("control-abort-preview");
    let spec = serve_spec(
        "bgabort",
        "  blueGreen: { autoPromote: false, previewChecks: 3 }",
        2,
        "0",
    );
    let (child, run_dir) = run.start_rollout("bgabort", &spec);
    let paused = run.wait_status(&run_dir, Duration::from_secs(60), |s| {
        s["phase"] == "paused"
    });
    assert_eq!(paused["strategy"], "blue-green");
    let abort = run.control("abort", &run_dir);
    assert!(abort.status.success(), "{}", text(&abort.stderr));

    let output = wait_with_deadline(child, Duration::from_secs(90));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let result = run.read_json("out.json");
    assert_eq!(result["failed"], 0, "{}", result["outages"]);
    let all = events(&result);
    let previewed = event_position(
        &result,
        "routing_set",
        json!({"routing": {"main": {"only": "v1"}, "preview": "v2"}}),
    )
    .unwrap_or_else(|| panic!("no preview route: {all:#?}"));
    let preview_removed = all
        .iter()
        .skip(previewed)
        .position(|e| e["kind"] == "routing_set" && e["routing"]["preview"].is_null())
        .map(|after| previewed + after)
        .unwrap_or_else(|| panic!("no preview removal: {all:#?}"));
    let scaled_down = event_position(&result, "scaled", json!({"version": "v2", "replicas": 0}))
        .unwrap_or_else(|| panic!("v2 never scaled down: {all:#?}"));
    // The preview route is gone before v2 is scaled down, not left pointing at it.
    assert!(preview_removed < scaled_down, "{all:#?}");
    assert!(
        event_position(&result, "rolled_back", json!({"version": "v1"})).is_some(),
        "{all:#?}"
    );
    // v2 served only the preview route: the main route's traffic never reached it.
    assert!(
        result["by_version"]["v2"].is_null() || result["by_version"]["v2"] == 0,
        "{}",
        result["by_version"]
    );
    run.assert_nothing_left();
}

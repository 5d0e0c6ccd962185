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

/// `zdd abort` while a header route and a mirror are set: both go before v2 is scaled down, the
/// mirror's counters are logged first (copies were sent and answered), and no request is dropped.
#[test]
fn abort_with_a_header_route_and_a_mirror_removes_both_before_v2_goes() {
    let run = Run::new("control-abort-routes");
    let spec = serve_spec(
        "abroutes",
        "  canary:\n    trafficRouting: weight\n    steps:\n      - setHeaderRoute: { name: testers, match: [ { header: X-Canary, exact: always } ] }\n      - setMirrorRoute: { name: shadow, percentage: 100 }\n      - pause: {}",
        2,
        "0",
    );
    let (child, run_dir) = run.start_rollout("abroutes", &spec);
    let paused = run.wait_status(&run_dir, Duration::from_secs(60), |s| {
        s["phase"] == "paused"
    });
    // 50 more requests, so copies of them went to v2 before the abort.
    let sent = paused["sent"].as_u64().expect("requests sent");
    run.wait_status(&run_dir, Duration::from_secs(30), |s| {
        s["sent"].as_u64().unwrap_or(0) >= sent + 50
    });
    let abort = run.control("abort", &run_dir);
    assert!(abort.status.success(), "{}", text(&abort.stderr));

    let output = wait_with_deadline(child, Duration::from_secs(90));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let result = run.read_json("out.json");
    assert_eq!(result["failed"], 0, "{}", result["outages"]);
    let all = events(&result);
    let position = |kind: &str, fields: serde_json::Value| {
        event_position(&result, kind, fields).unwrap_or_else(|| panic!("no {kind}: {all:#?}"))
    };
    let header_set = position(
        "header_route_set",
        json!({"name": "testers", "version": "v2"}),
    );
    let mirror_set = position(
        "mirror_route_set",
        json!({"name": "shadow", "percent": 100}),
    );
    let measured = position("mirror_measured", json!({"name": "shadow"}));
    let header_removed = position("header_route_removed", json!({"name": "testers"}));
    let mirror_removed = position("mirror_route_removed", json!({"name": "shadow"}));
    let scaled_down = position("scaled", json!({"version": "v2", "replicas": 0}));
    assert!(header_set < mirror_set && mirror_set < measured, "{all:#?}");
    assert!(measured < mirror_removed, "{all:#?}");
    assert!(
        header_removed < scaled_down && mirror_removed < scaled_down,
        "{all:#?}"
    );
    // The mirror's counters reached the summary: v2 answered the copies, no client saw them.
    let mirror = &result["mirror"];
    assert_eq!(mirror["version"], "v2", "{result}");
    assert!(mirror["sent"].as_u64().unwrap() > 0, "{mirror}");
    assert!(mirror["ok"].as_u64().unwrap() > 0, "{mirror}");
    assert!(
        result["by_version"]["v2"].is_null() || result["by_version"]["v2"] == 0,
        "{}",
        result["by_version"]
    );
    run.assert_nothing_left();
}

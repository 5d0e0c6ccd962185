//! `zdd demo`: the five strategies, A/B by header and shadow, from v1 to v2 of the reference
//! service with 3 replicas at 200 requests/s. Recreate drops requests and its outage is reported;
//! the other six drop none, with the built-in router and with a real Traefik. While the A/B's
//! header route is set its testers reach only v2; while the shadow's mirror is set only v1 answers
//! the clients, and the copies to v2 are counted. Pauses are shortened to keep the suite quick.
//! `zdd demo cluster-upgrade`: the same node upgrade three times; only the hardened one drops
//! nothing. `zdd demo canary-analysis`: a bad v2 rolled back by analysis at its first weight.
//!
//! A test binary of its own, not a module of `it`: cargo runs test binaries one after the other, so
//! a demo runs with no other test beside it, as with [`ONE_DEMO`] no other demo.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use zdd_test_support::run::{Run, text, wait_with_deadline};

/// One demo at a time: each runs up to 30 processes and 200 requests/s on a 2-core machine.
static ONE_DEMO: Mutex<()> = Mutex::new(());

fn demo(router: &str) {
    let _one = ONE_DEMO
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let run = Run::new(env!("CARGO_BIN_EXE_zdd"), &format!("demo-{router}"));
    let child = run.spawn(&[
        "demo",
        "--router",
        router,
        "--pause",
        "500ms",
        "--json",
        "demo.json",
        "--html",
        "demo.html",
    ]);
    let output = wait_with_deadline(child, Duration::from_secs(300));
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{stderr}\n{}",
        failures_of(&run)
    );

    let rows = run.read_json("demo.json");
    let rows = rows.as_array().expect("an array");
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "recreate",
            "rolling-update",
            "blue-green",
            "canary-replicas",
            "canary-weight",
            "ab-header",
            "shadow"
        ]
    );
    for row in rows {
        for field in [
            "total",
            "failed",
            "longest_outage_s",
            "duration_s",
            "p99_ms",
        ] {
            assert!(row[field].is_number(), "{field} missing in {row}");
        }
        let name = row["strategy"].as_str().unwrap();
        let total = row["total"].as_u64().unwrap();
        let failed = row["failed"].as_u64().unwrap();
        assert!(total > 500, "{name}: only {total} requests");
        assert!(
            row["by_version"]["v2"].as_u64().unwrap() > 0,
            "{name}: v2 never answered"
        );
        let windows = row["route_windows"].as_array().cloned().unwrap_or_default();
        let only = |who: &str, version: &str| {
            let window = windows
                .iter()
                .find(|w| w["requests_of"] == who)
                .unwrap_or_else(|| panic!("{name}: no window for {who}: {row}"));
            let by_version = window["by_version"].as_object().expect("by_version");
            assert!(window["total"].as_u64().unwrap() > 0, "{name}: {window}");
            assert_eq!(window["failed"], 0, "{name}: {window}");
            assert_eq!(
                by_version.keys().collect::<Vec<_>>(),
                [version],
                "{name}: {who} while the route was set: {window}"
            );
        };
        if name == "ab-header" {
            only("segment testers", "v2");
            let segment = &row["report"]["segments"][0];
            assert_eq!(segment["name"], "testers", "{row}");
            assert!(
                segment["by_version"]["v1"].as_u64().unwrap_or(0) > 0,
                "testers on v1 before the route: {segment}"
            );
        }
        if name == "shadow" {
            only("clients", "v1");
            let mirror = &row["mirror"];
            assert_eq!(mirror["version"], "v2", "{row}");
            assert!(
                mirror["sent"].as_u64().unwrap() > 0,
                "no copy sent: {mirror}"
            );
            assert!(
                mirror["ok"].as_u64().unwrap() > 0,
                "no copy answered: {mirror}"
            );
            assert!(stdout.contains("shadow: mirror to v2: "), "{stdout}");
        }
        if name == "recreate" {
            assert!(failed > 0, "recreate dropped nothing?");
            assert!(row["longest_outage_s"].as_f64().unwrap() > 0.2, "{row}");
        } else {
            assert_eq!(failed, 0, "{name} dropped requests: {}", row["outages"]);
            assert_eq!(row["succeeded"], true, "{name}: {}", row["outcome"]);
        }
    }
    // The table names every strategy; the HTML page has a section per strategy.
    for name in names {
        assert!(stdout.contains(&format!("| {name} |")), "{stdout}");
    }
    let html = std::fs::read_to_string(run.path().join("demo.html")).expect("demo.html");
    assert!(
        html.contains("canary-weight"),
        "the HTML page lacks a strategy"
    );
    run.assert_nothing_left();
}

#[test]
fn demo_with_the_builtin_router() {
    demo("builtin");
}

#[test]
fn demo_with_traefik() {
    demo("traefik");
}

/// `zdd demo ARGS` alone on the machine, asserted to exit 0 within `timeout`: the lock that
/// keeps other demos out (hold it to the test's end), the run and its stdout.
fn run_demo(
    name: &str,
    args: &[&str],
    timeout: Duration,
) -> (MutexGuard<'static, ()>, Run, String) {
    let one = ONE_DEMO
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let run = Run::new(env!("CARGO_BIN_EXE_zdd"), name);
    let output = wait_with_deadline(run.spawn(args), timeout);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    (one, run, stdout)
}

/// Packed replicas make a drain an outage; anti-affinity alone drops fewer requests and has no
/// outage; with the disruption budget and preStop too, nothing is dropped and the budget is seen
/// refusing evictions.
#[test]
fn demo_cluster_upgrade_compares_three_setups() {
    let (_one, run, stdout) = run_demo(
        "demo-cluster-upgrade",
        &["demo", "cluster-upgrade", "--json", "upgrade.json"],
        Duration::from_secs(180),
    );
    assert!(stdout.contains("| run | podAntiAffinity |"), "{stdout}");

    let rows = run.read_json("upgrade.json");
    let rows = rows.as_array().expect("an array");
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["upgrade-packed", "upgrade-spread", "upgrade-hardened"]
    );
    let failed = |row: &serde_json::Value| row["failed"].as_u64().unwrap();
    let outage = |row: &serde_json::Value| row["longest_outage_s"].as_f64().unwrap();
    let (packed, spread, hardened) = (&rows[0], &rows[1], &rows[2]);
    for row in rows {
        assert_eq!(row["succeeded"], true, "{}", row["outcome"]);
        assert!(row["total"].as_u64().unwrap() > 500, "{}", row["total"]);
    }
    assert!(
        outage(packed) > 0.3,
        "packed: no outage? {}",
        packed["outages"]
    );
    assert!(failed(spread) > 0, "spread dropped nothing?");
    assert!(
        failed(spread) < failed(packed),
        "{} vs {}",
        failed(spread),
        failed(packed)
    );
    assert!(outage(spread) < outage(packed));
    assert_eq!(failed(hardened), 0, "{}", hardened["outages"]);
    let refused = hardened["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "eviction_refused")
        .count();
    assert!(refused > 0, "the budget never refused an eviction");
    run.assert_nothing_left();
}

/// A v2 failing 5% of its requests (`ERROR_RATE`) is rolled back by its success rate at its
/// first weight (10%); the demo counts that as its right outcome and shows the blast radius:
/// the failed requests, all answered by v2.
#[test]
fn demo_canary_analysis_rolls_back_a_bad_v2_at_its_first_weight() {
    let (_one, run, stdout) = run_demo(
        "demo-canary-analysis",
        &["demo", "canary-analysis", "--json", "analysis.json"],
        Duration::from_secs(120),
    );
    let rows = run.read_json("analysis.json");
    let row = &rows.as_array().expect("an array")[0];
    assert_eq!(row["name"], "canary-analysis");
    assert_eq!(row["succeeded"], false);
    let why = row["rollback_reason"].as_str().unwrap();
    assert!(why.starts_with("analysis failed: success-rate"), "{why}");
    // Rolled back at the first weight: the weight never went past 10.
    let weights: Vec<&serde_json::Value> = row["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "step_started")
        .collect();
    assert!(
        weights
            .iter()
            .all(|e| !e["step"].as_str().unwrap().contains("setWeight 50")),
        "{weights:?}"
    );
    // The blast radius: some failed requests, every one of them answered by v2.
    let failed = row["failed"].as_u64().unwrap();
    assert!(failed > 0, "v2 failed nothing?");
    assert_eq!(row["report"]["failed_by_version"]["v2"], failed, "{row:#}");
    assert!(
        stdout.contains(&format!("blast radius {failed} failed requests")),
        "{stdout}"
    );
    run.assert_nothing_left();
}

/// What failed in each run that dropped requests, from the demo's JSON (the run directory goes
/// with the test): the kinds and the outages, so that a failure says more than its count.
fn failures_of(run: &Run) -> String {
    let Some(rows) = std::fs::read_to_string(run.path().join("demo.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
    else {
        return "no demo.json".into();
    };
    let mut out = String::new();
    for row in rows.as_array().into_iter().flatten() {
        let report = &row["report"];
        if report["failed"].as_u64().unwrap_or(0) > 0 {
            out += &format!(
                "{}: failed by kind {}, outages {}\n",
                row["strategy"], report["failed_by_kind"], report["outages"]
            );
        }
    }
    out
}

//! `zdd probe` as a user runs it: the real binary against a real server on loopback, for exit
//! codes 0/1/2 and the JSON and HTML reports.

use std::process::Output;

use zdd_probe::Report;
use zdd_test_support::upstream::{TestServer, refused_addr};

/// Answers `status` with `X-Version: v1`, counting requests.
async fn server(status: u16) -> TestServer {
    let server = TestServer::start(&["v1"]).await;
    server.set_status(status);
    server
}

async fn zdd(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_zdd"))
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run zdd")
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_exits_0_and_writes_json_and_html_reports() {
    let server = server(200).await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let html = dir.path().join("report.html");
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        "{\"t_s\": 0.2, \"label\": \"weight v2=50%\"}\nnot json\n{\"t_s\": 0.6, \"label\": \"v1 stopped\"}\n",
    )
    .unwrap();
    let url = server.url();
    let output = zdd(&[
        "probe",
        &url,
        "--rate",
        "100",
        "--duration",
        "1s",
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("100 sent, 100 ok, 0 failed"), "{stdout}");
    assert_eq!(server.requests(), 100);

    // The JSON parses back into the library's Report...
    let text = std::fs::read_to_string(&json).unwrap();
    let report: Report = serde_json::from_str(&text).unwrap();
    assert_eq!((report.total, report.ok, report.failed), (100, 100, 0));
    assert_eq!(report.by_version["v1"], 100);
    assert_eq!(report.rate, 100);
    assert!(report.outages.is_empty());
    assert_eq!(report.timeline.len(), 10);
    // ...and has every field docs/probe-report.md promises, with the documented types.
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    for field in [
        "total",
        "ok",
        "failed",
        "longest_outage_s",
        "duration_s",
        "start_s",
    ] {
        assert!(value[field].is_number(), "{field} in {text}");
    }
    for kind in [
        "http_5xx",
        "http_4xx",
        "refused",
        "reset",
        "timeout",
        "saturated",
        "other",
    ] {
        assert_eq!(value["failed_by_kind"][kind], 0, "{kind}");
    }
    assert!(value["by_version"].is_object());
    assert!(value["outages"].is_array());
    for field in ["p50", "p90", "p99", "max"] {
        assert!(value["latency_ms"][field].is_number(), "latency_ms.{field}");
    }
    let bucket = &value["timeline"][0];
    for field in ["t_s", "ok", "failed"] {
        assert!(bucket[field].is_number(), "timeline[0].{field}");
    }
    assert!(bucket["by_version"]["v1"].is_number());
    assert!(bucket["p99_ms"].is_number());

    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg"), "charts");
    assert!(page.contains("weight v2=50%") && page.contains("v1 stopped"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("skipping event"),
        "bad line reported: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_beyond_the_budget_exit_1() {
    let server = server(503).await;
    let url = server.url();
    let output = zdd(&["probe", &url, "--rate", "50", "--duration", "500ms"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("http_5xx 25"), "{stdout}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("more than --max-failed 0"));

    // The same failures within the budget pass.
    let output = zdd(&[
        "probe",
        &url,
        "--rate",
        "50",
        "--duration",
        "500ms",
        "--max-failed",
        "25",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    // Nobody listening: refused, exit 1.
    let closed = refused_addr();
    let json_dir = tempfile::tempdir().unwrap();
    let json = json_dir.path().join("r.json");
    let url = format!("http://{closed}/");
    let output = zdd(&[
        "probe",
        &url,
        "--rate",
        "20",
        "--duration",
        "500ms",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let report: Report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report.failed_by_kind["refused"], 10);
    assert_eq!(report.outages.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_with_a_reason_and_sends_nothing() {
    let server = server(200).await;
    let url = server.url();
    let cases: Vec<Vec<&str>> = vec![
        vec!["probe", &url, "--no-such-flag"],
        vec!["probe", &url, "--rate", "0"],
        vec!["probe", "not a url", "--duration", "1s"],
        vec!["probe", "https://127.0.0.1:1/", "--duration", "1s"],
        vec!["probe", &url, "--duration", "5"],
        vec!["probe", &url, "--timeout", "soon"],
        vec!["probe", &url, "--new-connection-ratio", "1.5"],
        vec!["probe", &url, "--connections", "0"],
        vec!["probe", &url, "--version-header", "bad header"],
        vec!["probe", &url, "--segment", "testers:20%"],
        vec!["probe", &url, "--segment", "testers:120%:X-Canary=always"],
        vec![
            "probe",
            &url,
            "--duration",
            "1s",
            "--segment",
            "a:60%:X=1",
            "--segment",
            "b:50%:X=2",
        ],
        vec![
            "probe",
            &url,
            "--duration",
            "1s",
            "--json",
            "/no/such/dir/report.json",
        ],
    ];
    for args in cases {
        let output = zdd(&args).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}\n{}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr.lines().next().unwrap_or_default();
        assert!(
            reason.starts_with("error:") || reason.starts_with("zdd probe:"),
            "{args:?}: one-line reason first: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?}: no report");
    }
    assert_eq!(server.requests(), 0, "no traffic sent");
}

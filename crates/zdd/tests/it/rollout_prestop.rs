//! The race preStop exists for. Python's http.server exits the moment SIGTERM arrives; the
//! router learns that the replica is gone only after the propagation delay (1 s). So a rolling
//! update with no preStop sleep drops the requests routed to the dead replica meanwhile, and one
//! with a preStop sleep longer than the delay drops none.

use std::time::Duration;

use crate::support::Run;
use zdd_test_support::run::{text, wait_with_deadline};

/// `python3 -m http.server`, with a listen backlog of 128 instead of socketserver's 5: a loaded
/// machine that stalls the server for a moment must not turn into dropped connections (that would
/// be the backlog's failure, not the race's).
const PYTHON_SERVER: &str = "import http.server as h, sys; h.ThreadingHTTPServer.request_queue_size = 128; h.test(HandlerClass=h.SimpleHTTPRequestHandler, ServerClass=h.ThreadingHTTPServer, port=int(sys.argv[1]), bind='127.0.0.1')";

fn python_spec(pre_stop: &str, max_failed: &str) -> String {
    format!(
        r#"name: python
app:
  command: ["python3", "-c", "{PYTHON_SERVER}", "{{port}}"]
  replicas: 3
  readinessProbe: {{ path: /, period: 200ms, failureThreshold: 1 }}
  {pre_stop}
  terminationGracePeriod: 10s
versions:
  from: {{ name: v1 }}
  to: {{ name: v2 }}
strategy:
  rollingUpdate: {{ maxSurge: 1, maxUnavailable: 0 }}
traffic: {{ rate: 200, path: / }}
budget: {{ maxFailed: {max_failed} }}
local: {{ propagationDelay: 1s }}
"#
    )
}

/// Rolls the Python service out from v1 to v2 with `spec`: zdd's exit code, JSON result, stderr.
fn rollout(run: &Run, spec: &str) -> (Option<i32>, serde_json::Value, String) {
    let (child, _) = run.start_rollout("python", spec);
    let output = wait_with_deadline(child, Duration::from_secs(120));
    let stderr = text(&output.stderr);
    (output.status.code(), run.read_json("out.json"), stderr)
}

#[test]
fn without_pre_stop_an_app_that_exits_on_sigterm_drops_requests() {
    let run = Run::new("prestop-none");
    // No budget limit: the rollout goes to the end and the report counts the drops.
    let (code, result, stderr) = rollout(&run, &python_spec("", "null"));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(result["succeeded"], true);
    assert!(
        result["failed"].as_u64().unwrap() > 0,
        "no request dropped without preStop: {}",
        result["report"]
    );
    assert!(result["longest_outage_s"].as_f64().unwrap() > 0.0);
    run.assert_nothing_left();
}

#[test]
fn a_pre_stop_sleep_longer_than_the_propagation_delay_drops_nothing() {
    let run = Run::new("prestop-2s");
    let (code, result, stderr) = rollout(&run, &python_spec("preStop: { sleep: 2s }", "0"));
    assert_eq!(code, Some(0), "{stderr}\n{}", result["outages"]);
    assert_eq!(result["failed"], 0, "{}", result["outages"]);
    assert!(result["total"].as_u64().unwrap() > 500);
    assert!(result["by_version"]["v2"].as_u64().unwrap() > 0);
    run.assert_nothing_left();
}

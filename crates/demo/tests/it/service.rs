//! The reference service's endpoints, warm-up and robustness, on the real binary (issue 2,
//! points 5 and 6, and the endpoint contract the probe and the platforms rely on).

use std::time::Duration;

use crate::support::{Demo, PATIENCE};
use zdd_test_support::http::blocking::{Connection, get};
use zdd_test_support::poll::wait_for;

/// Point 5: `/readyz` answers 503 during `STARTUP_DELAY` and 200 after it; liveness holds.
#[test]
fn unready_during_startup_delay_then_ready() {
    // Long enough that the first answer comes during the warm-up even on a stalled machine (a
    // process answers in tens of milliseconds; a shared machine can stall for a second or two).
    let startup_delay = Duration::from_secs(6);
    let demo = Demo::start(&[("STARTUP_DELAY", "6s")]);

    let first = wait_for("the service answers", PATIENCE, || {
        get(demo.address, "/readyz").ok()
    });
    if demo.spawned_at.elapsed() < startup_delay {
        assert_eq!(first.status, 503, "{first:?}");
        assert_eq!(first.body.trim(), "starting");
        let liveness = get(demo.address, "/healthz").unwrap();
        assert_eq!(liveness.status, 200, "liveness holds during warm-up");
        // The app itself is served while warming up (only readiness gates traffic).
        assert_eq!(get(demo.address, "/").unwrap().status, 200);
    } else {
        panic!("machine too slow: first answer only after the startup delay");
    }

    demo.wait_for_status("/readyz", 200);
    assert!(
        demo.spawned_at.elapsed() >= startup_delay,
        "ready before the startup delay passed"
    );
}

/// Point 6: malformed HTTP gets a 4xx, and the server keeps serving.
#[test]
fn malformed_http_gets_4xx_and_serving_continues() {
    let demo = Demo::start_ready(&[]);
    for garbage in [
        "THIS IS NOT HTTP\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nno colon in this header\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut connection = Connection::open(demo.address).unwrap();
        connection.send(garbage).unwrap();
        let answer = connection.read_answer().unwrap();
        assert!(
            (400..500).contains(&answer.status),
            "{garbage:?} got {answer:?}"
        );
        let next = get(demo.address, "/").unwrap();
        assert_eq!(next.status, 200, "still serving after {garbage:?}");
    }
    let bad_query = get(demo.address, "/work?ms=60001").unwrap();
    assert_eq!(bad_query.status, 400);
    assert!(bad_query.body.contains("0 to 60000"), "{bad_query:?}");
    for query in ["/work?ms=-1", "/work?ms=abc", "/work"] {
        assert_eq!(get(demo.address, query).unwrap().status, 400, "{query}");
    }
}

/// `GET /` names the version in the body and in `X-Version`, which every answer carries.
#[test]
fn every_answer_names_the_version() {
    let demo = Demo::start_ready(&[("APP_VERSION", "v2"), ("HOSTNAME", "replica-7")]);
    let index = get(demo.address, "/").unwrap();
    assert_eq!(index.status, 200);
    let body: serde_json::Value = serde_json::from_str(&index.body).unwrap();
    assert_eq!(body["version"], "v2");
    assert_eq!(body["host"], "replica-7");
    assert!(
        body["uptime_s"]
            .as_f64()
            .is_some_and(|uptime| uptime >= 0.0)
    );
    for path in [
        "/",
        "/healthz",
        "/readyz",
        "/health",
        "/ready",
        "/metrics",
        "/work?ms=1",
        "/nowhere",
        "/work?ms=x",
    ] {
        let answer = get(demo.address, path).unwrap();
        assert_eq!(answer.header("x-version"), Some("v2"), "{path}: {answer:?}");
    }
    assert_eq!(get(demo.address, "/nowhere").unwrap().status, 404);
}

/// `/work?ms=N` answers after about N ms.
#[test]
fn work_takes_the_time_asked() {
    let demo = Demo::start_ready(&[]);
    let started = std::time::Instant::now();
    let answer = get(demo.address, "/work?ms=300").unwrap();
    assert_eq!(answer.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(answer.body.contains(r#""worked_ms":300"#), "{answer:?}");
}

/// `/metrics` counts requests by status and version, in Prometheus text format.
#[test]
fn metrics_count_requests_by_status_and_version() {
    let demo = Demo::start_ready(&[("APP_VERSION", "v3")]);
    for _ in 0..3 {
        assert_eq!(get(demo.address, "/").unwrap().status, 200);
    }
    assert_eq!(get(demo.address, "/work?ms=oops").unwrap().status, 400);
    let metrics = get(demo.address, "/metrics").unwrap();
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|kind| kind.contains("text")),
        "{metrics:?}"
    );
    for line in [
        r#"http_requests_total{version="v3",status="200"} 3"#,
        r#"http_requests_total{version="v3",status="400"} 1"#,
        r#"http_requests_in_flight{version="v3"} 0"#,
        r#"lifecycle_state{version="v3",state="ready"} 1"#,
        r#"lifecycle_state{version="v3",state="draining"} 0"#,
        r#"http_request_duration_seconds_count{version="v3"} 4"#,
    ] {
        assert!(
            metrics.body.lines().any(|each| each == line),
            "missing {line}:\n{}",
            metrics.body
        );
    }
}

/// The probe toggles exist only with `ADMIN_TOGGLES=1`, under both naming schemes.
#[test]
fn probe_toggles_only_when_enabled() {
    let locked = Demo::start_ready(&[]);
    let mut connection = Connection::open(locked.address).unwrap();
    connection
        .send("POST /admin/unready HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    assert_eq!(connection.read_answer().unwrap().status, 404);
    assert_eq!(get(locked.address, "/readyz").unwrap().status, 200);
    drop(locked);

    let demo = Demo::start_ready(&[("ADMIN_TOGGLES", "1")]);
    let post = |path: &str| {
        let mut connection = Connection::open(demo.address).unwrap();
        connection
            .send(&format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
            ))
            .unwrap();
        connection.read_answer().unwrap().status
    };
    assert_eq!(post("/admin/unready"), 200);
    assert_eq!(get(demo.address, "/readyz").unwrap().status, 503);
    assert_eq!(post("/admin/ready"), 200);
    assert_eq!(get(demo.address, "/readyz").unwrap().status, 200);
    assert_eq!(post("/admin/unhealthy"), 200);
    assert_eq!(get(demo.address, "/healthz").unwrap().status, 503);
    assert_eq!(post("/admin/healthy"), 200);
    assert_eq!(get(demo.address, "/healthz").unwrap().status, 200);
    // The talk's names, as it called them (GET).
    assert_eq!(get(demo.address, "/doNotReady").unwrap().status, 200);
    assert_eq!(get(demo.address, "/ready").unwrap().status, 503);
    assert_eq!(get(demo.address, "/doReady").unwrap().status, 200);
    assert_eq!(get(demo.address, "/ready").unwrap().status, 200);
    assert_eq!(get(demo.address, "/doUnHealthz").unwrap().status, 200);
    assert_eq!(get(demo.address, "/health").unwrap().status, 503);
    assert_eq!(get(demo.address, "/doHealthz").unwrap().status, 200);
    assert_eq!(get(demo.address, "/health").unwrap().status, 200);
}

/// A bad environment variable is bad input: exit code 2, naming the variable.
#[test]
fn bad_environment_exits_2() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_zdd-demo"))
        .env_clear()
        .env("DRAIN_DELAY", "five seconds")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DRAIN_DELAY"), "{stderr}");
}

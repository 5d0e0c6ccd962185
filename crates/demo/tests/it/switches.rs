//! Fault injection (`ERROR_RATE`, `EXTRA_LATENCY`, `/admin/faults`) and feature flags
//! (`FEATURES`, `X-Features`, `/admin/features`) on the real binary (issues 12 and 13).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::Demo;
use zdd_test_support::http::Answer;
use zdd_test_support::http::blocking::{Connection, get};

/// One request written by hand (`method path`, extra header lines), on a fresh connection.
fn send(address: SocketAddr, method: &str, path: &str, headers: &[&str]) -> Answer {
    let mut connection = Connection::open(address).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    connection
        .send(&format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n{extra}Connection: close\r\n\r\n"
        ))
        .unwrap();
    connection.read_answer().unwrap()
}

fn json(answer: &Answer) -> serde_json::Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {answer:?}"))
}

fn features_of(answer: &Answer) -> Vec<String> {
    serde_json::from_value(json(answer)["features"].clone()).unwrap()
}

/// `n` keep-alive `GET /`, by status.
fn statuses(address: SocketAddr, n: usize) -> Vec<u16> {
    let mut connection = Connection::open(address).unwrap();
    (0..n)
        .map(|_| connection.get("/").unwrap().status)
        .collect()
}

#[test]
fn error_rate_answers_its_share_of_get_root_with_500() {
    let demo = Demo::start_ready(&[("ERROR_RATE", "0.05"), ("APP_VERSION", "v2")]);
    let seen = statuses(demo.address, 200);
    let failed = seen.iter().filter(|status| **status == 500).count();
    assert_eq!(failed, 10, "5% of 200: {seen:?}");
    assert!(seen.iter().all(|status| matches!(status, 200 | 500)));
    // The 500 says who failed and why; other routes are untouched.
    let mut connection = Connection::open(demo.address).unwrap();
    let answers: Vec<Answer> = (0..20).map(|_| connection.get("/").unwrap()).collect();
    let error = answers.iter().find(|a| a.status == 500).expect("one in 20");
    assert_eq!(error.header("x-version"), Some("v2"));
    assert!(
        error.body.contains("injected fault (ERROR_RATE)"),
        "{error:?}"
    );
    for _ in 0..40 {
        assert_eq!(connection.get("/work?ms=0").unwrap().status, 200);
    }
    // The metrics count the injected 500s like any other (what analysis will read).
    let metrics = get(demo.address, "/metrics").unwrap().body;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("http_requests_total{")
                && line.contains("status=\"500\"")
                && line.ends_with(" 11")),
        "{metrics}"
    );
}

#[test]
fn extra_latency_delays_get_root() {
    let demo = Demo::start_ready(&[("EXTRA_LATENCY", "300ms")]);
    let started = Instant::now();
    let answer = get(demo.address, "/").unwrap();
    assert_eq!(answer.status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn faults_switch_at_runtime_only_with_admin_toggles() {
    let locked = Demo::start_ready(&[]);
    assert_eq!(
        send(locked.address, "POST", "/admin/faults?error_rate=1", &[]).status,
        404
    );
    assert_eq!(get(locked.address, "/").unwrap().status, 200);
    drop(locked);

    let demo = Demo::start_ready(&[("ADMIN_TOGGLES", "1"), ("EXTRA_LATENCY", "5ms")]);
    let shown = json(&send(demo.address, "GET", "/admin/faults", &[]));
    assert_eq!(
        shown,
        serde_json::json!({"error_rate": 0.0, "extra_latency": "5ms"})
    );

    let set = send(demo.address, "POST", "/admin/faults?error_rate=1", &[]);
    assert_eq!(json(&set)["error_rate"], 1.0);
    assert!(
        statuses(demo.address, 10)
            .iter()
            .all(|status| *status == 500)
    );

    // One bad value: 400 naming it, and nothing changes.
    for bad in [
        "/admin/faults?error_rate=2&extra_latency=0",
        "/admin/faults?error_rate=0&extra_latency=soon",
        "/admin/faults?errors=0",
        "/admin/faults",
    ] {
        let answer = send(demo.address, "POST", bad, &[]);
        assert_eq!(answer.status, 400, "{bad}: {answer:?}");
        assert!(json(&answer)["error"].is_string(), "{answer:?}");
    }
    let named = json(&send(
        demo.address,
        "POST",
        "/admin/faults?error_rate=2",
        &[],
    ));
    assert!(
        named["error"]
            .as_str()
            .unwrap()
            .starts_with("error_rate=\"2\""),
        "{named}"
    );
    assert_eq!(get(demo.address, "/").unwrap().status, 500);

    let set = send(
        demo.address,
        "POST",
        "/admin/faults?error_rate=0&extra_latency=250ms",
        &[],
    );
    assert_eq!(
        json(&set),
        serde_json::json!({"error_rate": 0.0, "extra_latency": "250ms"})
    );
    let started = Instant::now();
    assert!(
        statuses(demo.address, 2)
            .iter()
            .all(|status| *status == 200)
    );
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[test]
fn features_come_from_the_environment_and_the_answer_names_them() {
    let demo = Demo::start_ready(&[("FEATURES", "new-checkout, dark-mode")]);
    let answer = get(demo.address, "/").unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(features_of(&answer), ["dark-mode", "new-checkout"]);
    assert_eq!(answer.header("x-features"), Some("dark-mode,new-checkout"));
    // The existing fields stay.
    let body = json(&answer);
    assert_eq!(body["version"], "v1");
    assert!(body["host"].is_string() && body["uptime_s"].is_number());
    // Without FEATURE_OVERRIDE=1 the header is ignored, even a malformed one.
    for header in ["X-Features: -dark-mode,beta", "X-Features: not a name"] {
        let answer = send(demo.address, "GET", "/", &[header]);
        assert_eq!(answer.status, 200);
        assert_eq!(
            features_of(&answer),
            ["dark-mode", "new-checkout"],
            "{header}"
        );
    }
    drop(demo);

    let bare = Demo::start_ready(&[]);
    let answer = get(bare.address, "/").unwrap();
    assert!(features_of(&answer).is_empty());
    assert_eq!(answer.header("x-features"), Some("-"));
}

#[test]
fn x_features_overrides_one_request_with_feature_override() {
    let demo = Demo::start_ready(&[("FEATURES", "a,b"), ("FEATURE_OVERRIDE", "1")]);
    let answer = send(demo.address, "GET", "/", &["X-Features: c, -a"]);
    assert_eq!(features_of(&answer), ["b", "c"]);
    assert_eq!(answer.header("x-features"), Some("b,c"));
    // Two headers apply in order; `+name` is `name`.
    let answer = send(
        demo.address,
        "GET",
        "/",
        &["X-Features: -b", "X-Features: +d"],
    );
    assert_eq!(features_of(&answer), ["a", "d"]);
    // Only that request: the next one has the service's features again.
    assert_eq!(features_of(&get(demo.address, "/").unwrap()), ["a", "b"]);
    let bad = send(demo.address, "GET", "/", &["X-Features: a b"]);
    assert_eq!(bad.status, 400);
    assert!(
        json(&bad)["error"]
            .as_str()
            .unwrap()
            .starts_with("X-Features:"),
        "{bad:?}"
    );
}

#[test]
fn features_switch_at_runtime_through_the_admin_api() {
    let demo = Demo::start_ready(&[("ADMIN_TOGGLES", "1"), ("FEATURES", "a")]);
    let shown = json(&send(demo.address, "GET", "/admin/features", &[]));
    assert_eq!(shown, serde_json::json!({"features": ["a"]}));

    let set = send(
        demo.address,
        "POST",
        "/admin/features?enable=b,c&disable=a",
        &[],
    );
    assert_eq!(json(&set), serde_json::json!({"features": ["b", "c"]}));
    assert_eq!(features_of(&get(demo.address, "/").unwrap()), ["b", "c"]);
    let set = send(demo.address, "POST", "/admin/features?disable=c", &[]);
    assert_eq!(json(&set), serde_json::json!({"features": ["b"]}));
    assert_eq!(
        get(demo.address, "/").unwrap().header("x-features"),
        Some("b")
    );

    for bad in [
        "/admin/features",
        "/admin/features?enable=",
        "/admin/features?enable=x&disable=x",
        "/admin/features?enable=no%20way",
        "/admin/features?on=x",
    ] {
        let answer = send(demo.address, "POST", bad, &[]);
        assert_eq!(answer.status, 400, "{bad}: {answer:?}");
    }
    assert_eq!(features_of(&get(demo.address, "/").unwrap()), ["b"]);
}

#[test]
fn bad_fault_and_feature_variables_exit_2_naming_them() {
    for (name, value) in [
        ("ERROR_RATE", "5%"),
        ("EXTRA_LATENCY", "a bit"),
        ("FEATURES", "ok,-nope"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_zdd-demo"))
            .env_clear()
            .env(name, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{stderr}");
    }
}

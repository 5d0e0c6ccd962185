//! A dark launch by feature switch, measured (docs/feature-switch.md): `zdd serve` under the
//! probe's traffic, a feature switched on and off through its admin API; no request fails, and
//! answers name the feature only while it is on.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use zdd_probe::ProbeConfig;
use zdd_test_support::http::send;
use zdd_test_support::poll::eventually;

const PATIENCE: Duration = Duration::from_secs(30);
const FEATURE: &str = "new-checkout";
/// What the service's `X-Features` says when no feature is on.
const NONE: &str = "-";

/// `zdd serve` on a loopback port the OS picks (learned from its JSON log line), toggles on.
async fn serve() -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_zdd"))
        .arg("serve")
        .env_clear()
        .envs([
            ("PORT", "0"),
            ("BIND", "127.0.0.1"),
            ("LOG_FORMAT", "json"),
            ("ADMIN_TOGGLES", "1"),
            ("HOSTNAME", "feature-switch"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn zdd serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if entry["fields"]["message"] == "zdd-demo listening" {
                return entry["fields"]["address"].as_str().unwrap().to_owned();
            }
        }
        panic!("zdd serve ended without listening");
    })
    .await
    .expect("zdd serve logs its address");
    // Keep reading, so a full pipe never blocks its logging.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, format!("http://{address}"))
}

/// Switches the feature and returns the probe-clock seconds just before and after the call.
async fn switch(url: &str, origin: Instant, action: &str) -> (f64, f64) {
    let before = origin.elapsed().as_secs_f64();
    let answer = send(
        url,
        "POST",
        &format!("/admin/features?{action}={FEATURE}"),
        &[],
        None,
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    (before, origin.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feature_switched_on_and_off_under_traffic_fails_no_request() {
    let (_serve, url) = serve().await;
    eventually("zdd serve ready", PATIENCE, async || {
        zdd_test_support::http::get_with(&url, "/readyz", &[])
            .await
            .is_ok_and(|answer| answer.status == 200)
    })
    .await;

    let origin = Instant::now();
    let mut config = ProbeConfig::new(url.parse().unwrap());
    config.rate = 200;
    // Room for a stall of the shared 2-core machine (seen: 400 ms with builds beside it): a
    // request that finds every slot busy counts as a failure of the probe's own (`saturated`).
    config.connections = 500;
    config.timeout = Duration::from_secs(5);
    // A bound only: the probe is stopped once both switches were seen.
    config.duration = Some(Duration::from_secs(60));
    // The probe counts answers by this header: the features that made each answer.
    config.version_header = "X-Features".into();
    config.origin = Some(origin);
    let probe = zdd_probe::start(config).unwrap();
    let seen = |name: &str| probe.progress().by_version.get(name).copied().unwrap_or(0);

    eventually("200 answers with no feature", PATIENCE, async || {
        seen(NONE) >= 200
    })
    .await;
    let (on_sent, on_done) = switch(&url, origin, "enable").await;
    eventually("200 answers with the feature", PATIENCE, async || {
        seen(FEATURE) >= 200
    })
    .await;
    let (off_sent, off_done) = switch(&url, origin, "disable").await;
    let none_before = seen(NONE);
    eventually("200 more answers with no feature", PATIENCE, async || {
        seen(NONE) >= none_before + 200
    })
    .await;
    probe.stop();
    let report = probe.finish().await;

    assert_eq!(report.failed, 0, "{report:?}");
    assert!(report.total >= 600, "{}", report.total);
    let names: Vec<&str> = report.by_version.keys().map(String::as_str).collect();
    assert_eq!(names, [NONE, FEATURE]);
    // Buckets are by scheduled send time; a request is never sent before it is scheduled, but may
    // go out late on a stalled machine, hence the margin before each switch.
    const MARGIN: f64 = 0.3;
    let only = |bucket: &zdd_probe::TimelineBucket, name: &str| {
        bucket.by_version.keys().all(|answered| answered == name)
    };
    let mut checked = [0; 3];
    for bucket in &report.timeline {
        let (start, end) = (bucket.t_s, bucket.t_s + report.bucket_s);
        if end + MARGIN <= on_sent {
            assert!(only(bucket, NONE), "before on at {on_sent:.3}: {bucket:?}");
            checked[0] += 1;
        } else if start >= on_done && end + MARGIN <= off_sent {
            assert!(only(bucket, FEATURE), "while on: {bucket:?}");
            checked[1] += 1;
        } else if start >= off_done {
            assert!(only(bucket, NONE), "after off at {off_done:.3}: {bucket:?}");
            checked[2] += 1;
        }
    }
    assert!(
        checked.iter().all(|n| *n >= 3),
        "buckets checked: {checked:?}"
    );
    println!(
        "feature switch: {} requests at {}/s, {} failed; answers {:?}; on {on_sent:.3}-{on_done:.3} s, off {off_sent:.3}-{off_done:.3} s; p99 {:.2} ms, max {:.2} ms",
        report.total,
        report.rate,
        report.failed,
        report.by_version,
        report.latency_ms.p99,
        report.latency_ms.max
    );
}

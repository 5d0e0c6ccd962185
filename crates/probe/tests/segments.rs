//! Segments against a real server on loopback: the share of requests that carry the segment's
//! headers is the one asked for, the others carry none, and the report counts exactly the
//! requests the server saw with them.

use std::time::Duration;

use zdd_probe::{ProbeConfig, Segment, render_text, start};
use zdd_test_support::upstream::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_sends_its_share_with_its_headers_and_is_counted_apart() {
    let server = TestServer::start(&["v1"]).await;
    server.record_requests();
    let mut config = ProbeConfig::new(server.url().parse().unwrap());
    config.rate = 200;
    config.duration = Some(Duration::from_millis(2000));
    config.segments = vec![
        Segment::parse("testers:20%:X-Canary=always").unwrap(),
        Segment::parse("beta:10%:Cookie=flavour=b,X-Beta=1").unwrap(),
    ];
    let report = start(config).unwrap().finish().await;
    assert_eq!(report.failed, 0, "{report:?}");
    let seen = server.wait_seen(report.total as usize).await;
    let canary = seen
        .iter()
        .filter(|s| s.header("x-canary") == Some("always"))
        .count() as u64;
    let beta = seen
        .iter()
        .filter(|s| s.header("cookie") == Some("flavour=b") && s.header("x-beta") == Some("1"))
        .count() as u64;
    // No request carries both, nor half of one.
    assert!(
        seen.iter()
            .all(|s| !(s.header("x-canary").is_some() && s.header("x-beta").is_some()))
    );
    assert_eq!(
        seen.iter().filter(|s| s.header("cookie").is_some()).count() as u64,
        beta
    );
    // The shares, within a few requests of 400.
    assert!(
        (canary as f64 - 0.2 * report.total as f64).abs() <= 3.0,
        "{canary} of {}",
        report.total
    );
    assert!(
        (beta as f64 - 0.1 * report.total as f64).abs() <= 3.0,
        "{beta} of {}",
        report.total
    );
    // The report counts exactly what the server saw.
    let [testers, beta_report] = &report.segments[..] else {
        panic!("{:?}", report.segments)
    };
    assert_eq!((testers.name.as_str(), testers.total), ("testers", canary));
    assert_eq!(
        (beta_report.name.as_str(), beta_report.total),
        ("beta", beta)
    );
    assert_eq!(testers.by_version.get("v1").copied(), Some(canary));
    let over_time: u64 = testers.timeline.iter().map(|s| s.total).sum();
    assert_eq!(over_time, canary);
    let text = render_text(&report);
    assert!(
        text.contains(&format!(
            "segment   testers (20%, X-Canary: always): {canary} requests, 0 failed, v1 {canary}"
        )),
        "{text}"
    );
    // Each version's own latency counts every ok answer of that version.
    assert_eq!(report.latency_ms_by_version["v1"].count, report.ok);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["segments"][0]["total"], canary, "{json}");
    let html = zdd_probe::render_html(&[("run", &report, &[])]);
    assert!(html.contains("segment testers"), "{html}");
}

#[test]
fn bad_segments_are_refused_before_any_traffic() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = ProbeConfig::new("http://127.0.0.1:9/".parse().unwrap());
    config.segments = vec![
        Segment::parse("a:60%:X=1").unwrap(),
        Segment::parse("b:50%:X=2").unwrap(),
    ];
    let err = runtime
        .block_on(async { start(config).err() })
        .expect("refused");
    assert!(err.to_string().contains("add up to 110%"), "{err}");
}

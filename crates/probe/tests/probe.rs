//! The probe against real servers on loopback: restarts, 500s, versions, timeouts, saturation and
//! connection reuse.

use std::time::{Duration, Instant};

use zdd_probe::{ProbeConfig, Report, render_text, start};
use zdd_test_support::poll::eventually;
use zdd_test_support::upstream::{TestServer, VersionIn};

const WAIT: Duration = Duration::from_secs(15);

fn config(server: &TestServer, rate: u32, duration: Option<Duration>) -> ProbeConfig {
    let mut config = ProbeConfig::new(server.url().parse().unwrap());
    config.rate = rate;
    config.duration = duration;
    config
}

fn assert_consistent(report: &Report) {
    assert_eq!(report.ok + report.failed, report.total, "{report:?}");
    assert_eq!(
        report.failed_by_kind.values().sum::<u64>(),
        report.failed,
        "{report:?}"
    );
    assert_eq!(
        report.by_version.values().sum::<u64>(),
        report.ok,
        "{report:?}"
    );
    let timeline_ok: u64 = report.timeline.iter().map(|b| b.ok).sum();
    let timeline_failed: u64 = report.timeline.iter().map(|b| b.failed).sum();
    assert_eq!((timeline_ok, timeline_failed), (report.ok, report.failed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_is_one_outage_of_refused_connections() {
    let mut server = TestServer::start(&["v1"]).await;
    // The probe's clock, to place the outage against what the test did (order, not windows).
    let origin = Instant::now();
    let at = || origin.elapsed().as_secs_f64();
    let mut config = config(&server, 200, Some(Duration::from_secs(30)));
    config.origin = Some(origin);
    let probe = start(config).unwrap();
    let began = Instant::now();
    eventually("traffic flows", WAIT, async || {
        probe.window(began).ok >= 100
    })
    .await;

    let down = at();
    server.stop().await;
    let stopped = at();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarting = at();
    server.restart().await;
    let up = Instant::now();
    eventually("traffic flows again", WAIT, async || {
        probe.window(up).ok >= 100
    })
    .await;
    probe.stop();
    let report = probe.finish().await;
    let text = render_text(&report);

    assert_consistent(&report);
    assert_eq!(report.outages.len(), 1, "{text}");
    let outage = &report.outages[0];
    let times = format!("down {down:.3}, stopped {stopped:.3}, restarting {restarting:.3}");
    // It covers the time the server was surely down: from the first request scheduled after the
    // stop (5 ms apart at 200/s) to the restart (a request sent late, after a stall of the
    // machine, may succeed with an earlier scheduled time: slack for that).
    assert!(outage.start_s <= stopped + 0.05, "{times}\n{text}");
    assert!(outage.end_s >= restarting - 0.3, "{times}\n{text}");
    // And no more than the server could have been down, give or take a request in flight.
    assert!(outage.start_s >= down - 0.1, "{times}\n{text}");
    let refused = outage.failed_by_kind.get("refused").copied().unwrap_or(0);
    assert!(refused * 10 >= outage.failed * 9, "mostly refused\n{text}");
    assert_eq!(outage.failed, report.failed, "{text}");
    assert!((report.longest_outage_s - outage.duration_s).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stretch_of_500s_is_an_outage_of_http_5xx() {
    let server = TestServer::start(&["v1"]).await;
    let origin = Instant::now();
    let at = || origin.elapsed().as_secs_f64();
    let mut config = config(&server, 200, Some(Duration::from_secs(30)));
    config.origin = Some(origin);
    let probe = start(config).unwrap();
    let began = Instant::now();
    eventually("traffic flows", WAIT, async || {
        probe.window(began).ok >= 100
    })
    .await;

    let broken = at();
    server.set_status(500);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let healing = at();
    server.set_status(200);
    let healed = Instant::now();
    eventually("traffic flows again", WAIT, async || {
        probe.window(healed).ok >= 100
    })
    .await;
    probe.stop();
    let report = probe.finish().await;
    let text = render_text(&report);

    assert_consistent(&report);
    assert_eq!(report.outages.len(), 1, "{text}");
    let outage = &report.outages[0];
    // Every answer between the two switches was a 500 (a request sent late after a stall of the
    // machine keeps its earlier scheduled time: slack for that).
    let times = format!("broken {broken:.3}, healing {healing:.3}");
    assert!(outage.start_s <= broken + 0.05, "{times}\n{text}");
    assert!(outage.end_s >= healing - 0.3, "{times}\n{text}");
    assert!(outage.start_s >= broken - 0.1, "{times}\n{text}");
    assert_eq!(
        outage.failed_by_kind.keys().collect::<Vec<_>>(),
        ["http_5xx"],
        "{text}"
    );
    assert_eq!(report.failed_by_kind["http_5xx"], report.failed);
    // 500s are answers: their latency is measured.
    assert_eq!(report.latency_ms.count, report.total, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_by_version_add_up_to_ok() {
    let server = TestServer::start(&["v1", "v2"]).await;
    let probe = start(config(&server, 200, Some(Duration::from_secs(2)))).unwrap();
    let report = probe.finish().await;
    let text = render_text(&report);

    assert_consistent(&report);
    // Scheduling is exact: 2 s at 200 rps.
    assert_eq!(report.total, 400, "{text}");
    assert_eq!(report.failed, 0, "{text}");
    assert_eq!(report.by_version.len(), 2, "{text}");
    for version in ["v1", "v2"] {
        let share = report.by_version[version] as f64 / report.ok as f64;
        assert!((0.4..=0.6).contains(&share), "{version}: {share}\n{text}");
    }
    assert!(report.latency_ms.p50 > 0.0 && report.latency_ms.p50 <= report.latency_ms.p99);
    assert!(report.latency_ms.p99 <= report.latency_ms.max);
    assert_eq!(report.timeline.len(), 20, "2 s of 100 ms buckets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_version_comes_from_the_body_then_the_fallback_header() {
    let server = TestServer::start(&["v2"]).await;
    server.set_version_in(VersionIn::JsonBody);
    let report = start(config(&server, 100, Some(Duration::from_millis(500))))
        .unwrap()
        .finish()
        .await;
    assert_eq!(report.by_version.keys().collect::<Vec<_>>(), ["v2"]);
    assert_eq!(report.by_version["v2"], report.ok);

    server.set_version_in(VersionIn::FallbackHeader);
    let report = start(config(&server, 100, Some(Duration::from_millis(500))))
        .unwrap()
        .finish()
        .await;
    assert_eq!(report.by_version.keys().collect::<Vec<_>>(), ["unknown"]);

    let mut with_fallback = config(&server, 100, Some(Duration::from_millis(500)));
    with_fallback.fallback_version_header = Some("X-Zdd-Version".into());
    let report = start(with_fallback).unwrap().finish().await;
    assert_eq!(report.by_version.keys().collect::<Vec<_>>(), ["v2"]);
    assert_eq!(report.total, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_sees_only_requests_scheduled_since_the_instant() {
    let server = TestServer::start(&["v1"]).await;
    let probe = start(config(&server, 200, Some(Duration::from_secs(30)))).unwrap();
    let began = Instant::now();
    eventually("v1 answers", WAIT, async || probe.window(began).ok >= 50).await;

    server.set_versions(&["v2"]);
    let switched = Instant::now();
    eventually("v2 answers", WAIT, async || {
        probe
            .window(switched)
            .by_version
            .get("v2")
            .copied()
            .unwrap_or(0)
            >= 100
    })
    .await;
    let since_switch = probe.window(switched);
    let since_start = probe.window(began);
    probe.stop();
    let report = probe.finish().await;

    assert!(
        !since_switch.by_version.contains_key("v1"),
        "{since_switch:?}"
    );
    assert_eq!(since_switch.failed, 0);
    assert!(since_start.by_version["v1"] >= 50, "{since_start:?}");
    assert!(since_start.ok >= since_switch.ok + 50);
    assert_eq!(report.failed, 0, "{}", render_text(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_time_out() {
    let server = TestServer::start(&["v1"]).await;
    server.set_delay(Duration::from_secs(3));
    let mut config = config(&server, 50, Some(Duration::from_secs(1)));
    config.timeout = Duration::from_millis(300);
    let report = start(config).unwrap().finish().await;
    let text = render_text(&report);

    assert_consistent(&report);
    assert_eq!(report.total, 50, "{text}");
    assert_eq!(report.failed_by_kind["timeout"], 50, "{text}");
    assert_eq!(report.outages.len(), 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_connections_make_saturated_failures_and_latency_counts_from_the_schedule() {
    let server = TestServer::start(&["v1"]).await;
    server.set_delay(Duration::from_millis(400));
    let mut config = config(&server, 100, Some(Duration::from_secs(1)));
    config.connections = 4;
    let report = start(config).unwrap().finish().await;
    let text = render_text(&report);

    assert_consistent(&report);
    assert_eq!(report.total, 100, "{text}");
    // 4 slots busy 400 ms each: about 10 requests start, the rest find no free slot.
    let saturated = report.failed_by_kind["saturated"];
    assert!(saturated >= 60, "{text}");
    assert!((4..=20).contains(&report.ok), "{text}");
    assert!(report.latency_ms.p50 >= 390.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_threads_share_one_schedule_and_one_slot_limit() {
    let server = TestServer::start(&["v1", "v2"]).await;
    let mut steady = config(&server, 1000, Some(Duration::from_secs(1)));
    steady.threads = 2;
    let report = start(steady).unwrap().finish().await;
    let text = render_text(&report);
    assert_consistent(&report);
    // Every request exactly once, whichever thread claimed it.
    assert_eq!(report.total, 1000, "{text}");
    let sent = report.total - report.failed_by_kind["saturated"];
    assert_eq!(server.requests(), sent, "{text}");

    // Slots split 2 + 2 between the threads: still 4 in all, and saturated beyond.
    server.set_delay(Duration::from_millis(400));
    let mut busy = config(&server, 100, Some(Duration::from_secs(1)));
    busy.connections = 4;
    busy.threads = 2;
    let report = start(busy).unwrap().finish().await;
    let text = render_text(&report);
    assert_consistent(&report);
    assert_eq!(report.total, 100, "{text}");
    assert!(report.failed_by_kind["saturated"] >= 60, "{text}");
    assert!((4..=20).contains(&report.ok), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_is_honoured_without_failures() {
    let server = TestServer::start(&["v1"]).await;
    server
        .behaviour
        .connection_close
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let report = start(config(&server, 100, Some(Duration::from_millis(1500))))
        .unwrap()
        .finish()
        .await;
    let text = render_text(&report);

    assert_eq!(report.total, 150, "{text}");
    assert_eq!(report.failed, 0, "{text}");
    assert_eq!(server.connections(), 150, "one connection per request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connection_ratio_sets_how_many_requests_use_a_fresh_connection() {
    let server = TestServer::start(&["v1"]).await;
    let report = start(config(&server, 100, Some(Duration::from_secs(2))))
        .unwrap()
        .finish()
        .await;
    assert_eq!(report.failed, 0);
    let reused_only = server.connections();
    assert!(reused_only <= 10, "keep-alive reuses: {reused_only}");

    let server = TestServer::start(&["v1"]).await;
    let mut half_fresh = config(&server, 100, Some(Duration::from_secs(2)));
    half_fresh.new_connection_ratio = 0.5;
    let report = start(half_fresh).unwrap().finish().await;
    assert_eq!(report.failed, 0);
    let connections = server.connections();
    // 100 fresh ones, and the pooled ones: as many as were ever in flight at once (a few, more
    // if the machine stalls).
    assert!(
        (100..=140).contains(&connections),
        "100 fresh + a few pooled: {connections}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_count_from_a_shared_origin() {
    let server = TestServer::start(&["v1"]).await;
    let mut config = config(&server, 100, Some(Duration::from_millis(500)));
    // The rollout's event log started a second ago; the probe shares its clock.
    let origin = Instant::now() - Duration::from_secs(1);
    config.origin = Some(origin);
    let probe = start(config).unwrap();
    let started_by = origin.elapsed().as_secs_f64();
    let report = probe.finish().await;

    // The first request is scheduled on the shared clock: after the origin's second, no later
    // than the probe was started.
    assert!(
        (1.0..=started_by).contains(&report.start_s),
        "{} (started by {started_by})",
        report.start_s
    );
    let first = report.timeline.first().expect("buckets");
    assert!((first.t_s - (report.start_s * 10.0).floor() / 10.0).abs() < 1e-9);
    assert_eq!(report.total, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_stops_the_traffic() {
    let server = TestServer::start(&["v1"]).await;
    let probe = start(config(&server, 200, None)).unwrap();
    eventually("traffic flows", WAIT, async || server.requests() >= 50).await;
    assert!(probe.is_scheduling());
    drop(probe);
    // The workers notice the stop at once; a busy machine may take a while to run them, so wait
    // until the count holds still (it never would if the traffic went on)...
    let mut last = server.requests();
    eventually("the traffic stops after the drop", WAIT, async || {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = server.requests();
        std::mem::replace(&mut last, now) == now
    })
    .await;
    // ... and stays still.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.requests(), last, "no request after the drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_closed_by_the_server_are_not_reused() {
    let server = TestServer::start(&["v1"]).await;
    // Requests every 100 ms; the server closes each connection 40 ms after accepting it, while it
    // is idle: a careful client notices and reconnects, so no request fails.
    *server.behaviour.max_connection_age.lock().unwrap() = Some(Duration::from_millis(40));
    let report = start(config(&server, 10, Some(Duration::from_secs(1))))
        .unwrap()
        .finish()
        .await;
    let text = render_text(&report);

    assert_eq!(report.total, 10, "{text}");
    assert_eq!(report.failed, 0, "{text}");
    assert_eq!(
        server.connections(),
        10,
        "a new connection for each request"
    );
}

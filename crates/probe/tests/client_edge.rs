//! The probe's own resources: every connection closed once a run is over, and no CPU spent
//! between requests at a low rate.

use std::sync::atomic::Ordering;
use std::time::Duration;

use zdd_probe::{ProbeConfig, start};
use zdd_test_support::poll::eventually;
use zdd_test_support::process::{run_in_own_process, thread_cpu_ticks};
use zdd_test_support::upstream::{Scripted, Step, scripted_upstream};

/// A keep-alive server answering every request with `200`; counts the connections it accepted and
/// the ones that ended.
async fn counting_server() -> (String, Scripted) {
    let server = scripted_upstream(|_, _| {
        Step::Answer(b"HTTP/1.1 200 OK\r\nX-Version: v1\r\nContent-Length: 2\r\n\r\nok")
    })
    .await;
    (format!("http://{}/", server.addr), server)
}

/// Once `finish` returns, every connection the probe opened is closed (keep-alive ones, fresh
/// ones, on both worker threads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_outlives_the_run() {
    let (url, server) = counting_server().await;
    let mut config = ProbeConfig::new(url.parse().unwrap());
    config.rate = 200;
    config.duration = Some(Duration::from_millis(500));
    config.connections = 8;
    config.threads = 2;
    config.new_connection_ratio = 0.1;
    let report = start(config).unwrap().finish().await;
    assert_eq!((report.total, report.failed), (100, 0), "{report:?}");
    assert!(
        server.accepted.load(Ordering::SeqCst) >= 10,
        "fresh connections were opened"
    );
    eventually(
        "every connection is closed after the run",
        Duration::from_secs(5),
        async || server.open() == 0,
    )
    .await;
}

/// Between requests at a low rate the probe's threads sleep (its alarm and idle connection
/// watchers spin nothing). Measured in a process of its own, where the only probe threads are
/// this probe's.
#[test]
fn a_probe_at_a_low_rate_spends_no_cpu_between_requests() {
    run_in_own_process(module_path!(), "probe_cpu_in_a_process_of_its_own");
}

#[ignore = "run by a_probe_at_a_low_rate_spends_no_cpu_between_requests in a process of its own"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_cpu_in_a_process_of_its_own() {
    let (url, _) = counting_server().await;
    let mut config = ProbeConfig::new(url.parse().unwrap());
    config.rate = 5;
    config.connections = 16;
    config.threads = 2;
    let probe = start(config).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = thread_cpu_ticks("zdd-probe");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let end = thread_cpu_ticks("zdd-probe");
    probe.stop();
    let report = probe.finish().await;
    assert_eq!(report.failed, 0, "{report:?}");
    // The two worker threads asked for are the ones measured (a sum over none would pass).
    assert_eq!(start.len(), 2, "the probe's threads: {start:?}");
    // A thread spinning for the whole second uses about 100 ticks.
    let used: Vec<u64> = start.iter().map(|(tid, t)| end[tid] - t).collect();
    assert!(
        used.iter().all(|ticks| *ticks <= 10),
        "ticks in 1 s at 5 requests/s per probe thread: {used:?}"
    );
}

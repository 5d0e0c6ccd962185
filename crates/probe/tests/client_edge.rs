//! The probe's own resources: every connection closed once a run is over, and no CPU spent
//! between requests at a low rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use zdd_probe::{ProbeConfig, start};

/// A keep-alive server answering every request with `200`; counts the connections open now and
/// the ones ever accepted.
async fn counting_server() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let open = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let (open_count, accepted_count) = (open.clone(), accepted.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            open_count.fetch_add(1, Ordering::SeqCst);
            accepted_count.fetch_add(1, Ordering::SeqCst);
            let open = open_count.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut chunk = [0u8; 2048];
                loop {
                    match stream.read(&mut chunk).await {
                        Ok(n) if n > 0 => seen.extend_from_slice(&chunk[..n]),
                        _ => break,
                    }
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let answer =
                            b"HTTP/1.1 200 OK\r\nX-Version: v1\r\nContent-Length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (url, open, accepted)
}

/// Once `finish` returns, every connection the probe opened is closed (keep-alive ones, fresh
/// ones, on both worker threads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_outlives_the_run() {
    let (url, open, accepted) = counting_server().await;
    let mut config = ProbeConfig::new(url.parse().unwrap());
    config.rate = 200;
    config.duration = Some(Duration::from_millis(500));
    config.connections = 8;
    config.threads = 2;
    config.new_connection_ratio = 0.1;
    let report = start(config).unwrap().finish().await;
    assert_eq!((report.total, report.failed), (100, 0), "{report:?}");
    assert!(
        accepted.load(Ordering::SeqCst) >= 10,
        "fresh connections were opened"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while open.load(Ordering::SeqCst) > 0 {
        assert!(
            Instant::now() < deadline,
            "{} connections still open after the run",
            open.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// CPU time (user + system, in clock ticks) of this process's threads named `zdd-probe-*`.
fn probe_thread_ticks() -> Vec<u64> {
    let mut ticks = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !name.starts_with("zdd-probe") {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // Fields after `(comm)`: utime and stime are the 12th and 13th.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        ticks.push(fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap());
    }
    ticks
}

/// Between requests at a low rate the probe's threads sleep (its alarm and idle connection
/// watchers spin nothing). Measured in a process of its own, where the only probe threads are
/// this probe's.
#[test]
fn a_probe_at_a_low_rate_spends_no_cpu_between_requests() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "probe_cpu_in_a_process_of_its_own",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.contains("1 passed"),
        "{text}"
    );
}

#[ignore = "run by a_probe_at_a_low_rate_spends_no_cpu_between_requests in a process of its own"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_cpu_in_a_process_of_its_own() {
    let (url, _, _) = counting_server().await;
    let mut config = ProbeConfig::new(url.parse().unwrap());
    config.rate = 5;
    config.connections = 16;
    config.threads = 2;
    let probe = start(config).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start_ticks: u64 = probe_thread_ticks().iter().sum();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let end_ticks: u64 = probe_thread_ticks().iter().sum();
    probe.stop();
    let report = probe.finish().await;
    assert_eq!(report.failed, 0, "{report:?}");
    // A thread spinning for the whole second uses about 100 ticks.
    assert!(
        end_ticks - start_ticks <= 10,
        "{} ticks in 1 s at 5 requests/s",
        end_ticks - start_ticks
    );
}

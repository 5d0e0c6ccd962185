//! zdd-probe: an open-loop load generator that proves (or disproves) zero downtime.
//!
//! Requests are scheduled at a fixed rate whatever the server does (open loop); each one's latency
//! counts from its scheduled send time, so a stall shows instead of slowing the probe down. A
//! request that finds all slots busy (as many requests in flight as [`ProbeConfig::connections`])
//! fails as `saturated` rather than waiting. Connections are opened only when no idle one is free,
//! so they follow the requests in flight, not the slots. Outcomes
//! are aggregated as they complete (totals, an HDR histogram, 100 ms timeline buckets, outages), so
//! memory does not grow with the request count.
//!
//! The API below is what the rest of the workspace builds against: [`start`] a probe, read
//! [`ProbeHandle::window`] while it runs, then [`ProbeHandle::stop`] and [`ProbeHandle::finish`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::{CancellationToken, DropGuard};

mod aggregate;
mod client;
mod fd_limit;
mod html;
mod measure;
mod outcome;
mod pool;
mod report;
mod schedule;
mod segments;
mod version_latency;
mod worker;

use aggregate::Aggregator;
use client::Client;
use schedule::Schedule;
use worker::{WorkerConfig, WorkerSetup};

pub use html::{EVENT_COLOR, Mark, render_html, render_html_marked};
pub use measure::{SLOT as MEASURE_SLOT, VersionWindow};
pub use outcome::FailureKind;
pub use report::{Latency, Outage, Report, TimelineBucket, render_text};
pub use segments::{
    Segment, SegmentBucket, SegmentReport, parse_share, render_html as render_segments_html,
};

/// See [`ProbeConfig::batch_interval`]: one wake-up per request (precise send times) below
/// 10 000 requests/s; above, at most 10 000 wake-ups a second per worker, a few % of a core.
pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_micros(100);

/// With [`ProbeConfig::threads`] 0, one worker thread per this many requests per second (at most
/// one per core): one thread keeps the probe's CPU lowest at the rates a rollout uses.
pub const RATE_PER_THREAD: u32 = 10_000;

/// The width of the timeline buckets, and so the granularity of [`ProbeHandle::window`].
pub const BUCKET: Duration = aggregate::BUCKET;

/// An event marked on the report's charts at its time (`--events FILE`, JSON lines; other fields
/// of a line, such as zdd's `kind`, are ignored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventMark {
    /// Seconds since the probe's time zero.
    pub t_s: f64,
    pub label: String,
}

#[derive(Clone, Debug)]
pub struct ProbeConfig {
    pub url: http::Uri,
    /// Requests per second, scheduled open-loop.
    pub rate: u32,
    /// `None`: until [`ProbeHandle::stop`].
    pub duration: Option<Duration>,
    /// Most requests in flight at once (the slots); one that cannot start counts as `saturated`.
    /// Connections are another thing: one is opened only when no idle one is free, so a server
    /// that keeps up needs a few, whatever this is; [`Report::max_connections_open`] says how many
    /// were open at most.
    pub connections: usize,
    /// Fraction of requests sent on a fresh connection.
    pub new_connection_ratio: f64,
    pub timeout: Duration,
    /// The header that names the answering version (then the JSON body's `version` field).
    pub version_header: String,
    /// Used when the app reports no version itself (zdd's router adds `X-Zdd-Version`).
    pub fallback_version_header: Option<String>,
    /// Time zero of the report; share it with an event log. Default: the start of the run.
    pub origin: Option<Instant>,
    /// Each worker's alarm wakes at most this often; above `1 / batch_interval` requests per
    /// second it wakes the slots of several requests at once, each request keeping its scheduled
    /// time (so the lateness, up to this long, counts in the latency). Smaller: more precise send
    /// times, more wake-ups. Zero: one wake-up per request. Also the slack after which a request
    /// that found every slot busy counts as `saturated`.
    pub batch_interval: Duration,
    /// Worker threads, each with its own single-threaded runtime and a share of the slots.
    /// 0: one per [`RATE_PER_THREAD`] requests per second, at most one per core.
    pub threads: usize,
    /// Shares of the requests sent with headers of their own, counted apart in the report.
    pub segments: Vec<Segment>,
}

impl ProbeConfig {
    pub fn new(url: http::Uri) -> Self {
        ProbeConfig {
            url,
            rate: 200,
            duration: None,
            connections: 64,
            new_connection_ratio: 0.0,
            timeout: Duration::from_secs(2),
            version_header: "X-Version".into(),
            fallback_version_header: None,
            origin: None,
            batch_interval: DEFAULT_BATCH_INTERVAL,
            threads: 0,
            segments: Vec::new(),
        }
    }

    /// The worker threads to run, each with at least one slot.
    fn worker_threads(&self) -> usize {
        let wanted = if self.threads > 0 {
            self.threads
        } else {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (self.rate.div_ceil(RATE_PER_THREAD) as usize).min(cores)
        };
        wanted.clamp(1, self.connections)
    }

    fn validate(&self) -> Result<(), ProbeError> {
        let bad = |reason: String| Err(ProbeError::Config(reason));
        if self.rate == 0 {
            return bad("rate must be at least 1 request per second".into());
        }
        if self.connections == 0 {
            return bad("connections must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.new_connection_ratio) {
            return bad(format!(
                "new connection ratio must be between 0 and 1, not {}",
                self.new_connection_ratio
            ));
        }
        if self.timeout.is_zero() {
            return bad("timeout must be more than zero".into());
        }
        if self.batch_interval > Duration::from_secs(1) {
            return bad("batch interval must be at most 1s".into());
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return bad("duration must be more than zero".into());
        }
        segments::validate(&self.segments)
    }
}

/// Counts in a window of time, read while the probe runs (the engine's data-plane check).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WindowStats {
    pub ok: u64,
    pub failed: u64,
    /// Ok answers by version (`unknown` when the answer named none).
    pub by_version: BTreeMap<String, u64>,
}

/// Totals so far, for a live view.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    pub elapsed: Duration,
    /// Requests scheduled so far (some may still be in flight).
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub by_version: BTreeMap<String, u64>,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>6.1}s  sent {}  ok {}  failed {}",
            self.elapsed.as_secs_f64(),
            self.sent,
            self.ok,
            self.failed
        )?;
        if self.ok > 0 && !self.by_version.is_empty() {
            let shares: Vec<String> = self
                .by_version
                .iter()
                .map(|(v, n)| format!("{v} {:.0}%", 100.0 * *n as f64 / self.ok as f64))
                .collect();
            write!(f, "  [{}]", shares.join(" "))?;
        }
        Ok(())
    }
}

/// State shared by the worker threads and the handle.
struct Shared {
    origin: Instant,
    schedule: Schedule,
    aggregator: Mutex<Aggregator>,
    /// Requests sent or found saturated so far.
    sent: AtomicU64,
    /// Worker threads still running.
    workers: AtomicUsize,
}

/// Stops a probe from anywhere (a Ctrl-C handler) while another task awaits
/// [`ProbeHandle::finish`].
#[derive(Clone)]
pub struct Stopper {
    token: CancellationToken,
    shared: Arc<Shared>,
}

impl Stopper {
    pub fn stop(&self) {
        // The instant first: requests due until then still go out.
        self.shared.schedule.stop(Instant::now());
        self.token.cancel();
    }
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopper")
            .field("stopped", &self.shared.schedule.is_stopped())
            .finish()
    }
}

/// A running probe. Dropping it stops the scheduling.
pub struct ProbeHandle {
    config: ProbeConfig,
    shared: Arc<Shared>,
    client: Arc<Client>,
    stopper: Stopper,
    /// One per worker thread; closed when the thread ends.
    workers_done: Vec<tokio::sync::oneshot::Receiver<()>>,
    run_start: Instant,
    _stop_on_drop: DropGuard,
}

impl ProbeHandle {
    /// Outcomes of requests *scheduled* at or after `since` that have completed.
    ///
    /// Granularity: whole 100 ms timeline buckets ([`BUCKET`]), counted from the first bucket
    /// boundary at or after `since`, up to now. So requests scheduled in the first (up to) 100 ms
    /// after `since` may be left out, but never one scheduled before `since`: "no request reached
    /// v1 since T" is not fooled by answers to older requests. Outcomes reach the counts about
    /// 1 ms after they complete. Cost: one lock and a sum over the buckets in the window.
    pub fn window(&self, since: Instant) -> WindowStats {
        let from =
            aggregate::bucket_index_ceil(since.saturating_duration_since(self.shared.origin));
        self.shared
            .aggregator
            .lock()
            .expect("aggregator poisoned")
            .window(from)
    }

    /// Each version's answers (ok and failed, with latencies) of requests scheduled in the
    /// 1-second slots (since time zero) that start in `from..to`: one measurement for analysis.
    /// Back-to-back spans count every slot once. The last slot ends up to a second after `to`:
    /// ask [`MEASURE_SLOT`] (plus the answers' latency) after `to`.
    pub fn versions_between(&self, from: Instant, to: Instant) -> BTreeMap<String, VersionWindow> {
        let since = |at: Instant| at.saturating_duration_since(self.shared.origin);
        let slot = measure::SLOT.as_nanos();
        let from = since(from).as_nanos().div_ceil(slot) as u64;
        let to = since(to).as_nanos().div_ceil(slot) as u64;
        self.shared
            .aggregator
            .lock()
            .expect("aggregator poisoned")
            .versions_between(from, to)
    }

    /// Totals so far.
    pub fn progress(&self) -> Progress {
        let aggregator = self.shared.aggregator.lock().expect("aggregator poisoned");
        Progress {
            elapsed: self.run_start.elapsed(),
            sent: self.shared.sent.load(Ordering::Relaxed),
            ok: aggregator.ok(),
            failed: aggregator.failed(),
            by_version: aggregator.by_version(),
        }
    }

    /// Asks the probe to stop scheduling; in-flight requests still complete (or time out).
    pub fn stop(&self) {
        self.stopper.stop();
    }

    /// Whether requests are still being scheduled (false once the duration is reached or after
    /// [`stop`](Self::stop)).
    pub fn is_scheduling(&self) -> bool {
        self.shared.schedule.is_running(Instant::now())
            && self.shared.workers.load(Ordering::Acquire) > 0
    }

    /// A handle that can stop the probe while [`finish`](Self::finish) is awaited.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Waits for the run to end (duration reached or [`stop`](Self::stop)) and returns the report.
    pub async fn finish(self) -> Report {
        // An error means the worker panicked: report what was measured.
        for done in self.workers_done {
            let _ = done.await;
        }
        let origin = self.shared.origin;
        let now = Instant::now();
        let end = self
            .shared
            .schedule
            .ended_at()
            .map_or(now, |end| end.min(now));
        let start = self.run_start.saturating_duration_since(origin);
        let end = end.saturating_duration_since(origin).max(start);
        let mut aggregator = {
            let mut guard = self.shared.aggregator.lock().expect("aggregator poisoned");
            std::mem::replace(
                &mut *guard,
                Aggregator::new(start, Duration::from_secs(1), self.config.timeout),
            )
        };
        let (segments, latency_by_version) = aggregator.apart();
        let mut report = aggregator.into_report(start, end);
        report.segments = segments;
        report.latency_ms_by_version = latency_by_version;
        report.url = self.config.url.to_string();
        report.rate = self.config.rate;
        report.connections = self.config.connections;
        report.max_connections_open = self.client.max_connections_open();
        report
    }
}

/// Starts a probe: its worker threads begin sending at once.
pub fn start(config: ProbeConfig) -> Result<ProbeHandle, ProbeError> {
    config.validate()?;
    let client = Arc::new(
        Client::new(
            &config.url,
            config.timeout,
            &config.version_header,
            config.fallback_version_header.as_deref(),
        )?
        .with_segments(&config.segments),
    );
    let threads = config.worker_threads();
    // Slots dealt out evenly: the first `connections % threads` workers get one more.
    let setups = (0..threads)
        .map(|i| {
            WorkerSetup::new(
                config.connections / threads + usize::from(i < config.connections % threads),
            )
        })
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(ProbeError::Start)?;
    let run_start = Instant::now();
    let origin = config.origin.unwrap_or(run_start);
    let interval = Duration::from_secs_f64(1.0 / f64::from(config.rate));
    let shared = Arc::new(Shared {
        origin,
        schedule: Schedule::new(
            run_start,
            config.rate,
            config.duration.map(|d| run_start + d),
            config.batch_interval,
        ),
        aggregator: Mutex::new(
            Aggregator::new(
                run_start.saturating_duration_since(origin),
                interval,
                config.timeout,
            )
            .with_segments(&config.segments),
        ),
        sent: AtomicU64::new(0),
        workers: AtomicUsize::new(threads),
    });
    let token = CancellationToken::new();
    let stopper = Stopper {
        token: token.clone(),
        shared: shared.clone(),
    };
    let worker_config = WorkerConfig {
        new_connection_ratio: config.new_connection_ratio,
        batch_interval: config.batch_interval,
    };
    let mut workers_done = Vec::with_capacity(threads);
    for (i, setup) in setups.into_iter().enumerate() {
        let (done, done_rx) = tokio::sync::oneshot::channel();
        let (shared, client, token) = (shared.clone(), client.clone(), token.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("zdd-probe-{i}"))
            .spawn(move || {
                // Counted down on the way out, even if the worker panics.
                let _running = WorkerRunning(shared.clone());
                setup.run(shared, client, worker_config, token);
                let _ = done.send(());
            });
        if let Err(err) = spawned {
            // The workers already started end with the stop.
            stopper.stop();
            return Err(ProbeError::Start(err));
        }
        workers_done.push(done_rx);
    }
    Ok(ProbeHandle {
        config,
        shared,
        client,
        _stop_on_drop: token.drop_guard(),
        stopper,
        workers_done,
        run_start,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("invalid probe configuration: {0}")]
    Config(String),
    #[error("cannot start the probe's workers: {0}")]
    Start(std::io::Error),
}

struct WorkerRunning(Arc<Shared>);

impl Drop for WorkerRunning {
    fn drop(&mut self) {
        self.0.workers.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_moves_to_another_task_and_finishes_there() {
        fn shared_between_threads<T: Send + Sync>(_: &T) {}
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let report = runtime.block_on(async {
            // Nothing listens on the discard port of loopback: every request is refused.
            let mut config = ProbeConfig::new("http://127.0.0.1:9/".parse().unwrap());
            config.rate = 50;
            config.duration = Some(Duration::from_millis(200));
            let probe = start(config).unwrap();
            shared_between_threads(&probe);
            // Spawning needs the handle and its `finish` future to be `Send`.
            tokio::spawn(async move { probe.finish().await })
                .await
                .unwrap()
        });
        assert_eq!(report.total, 10, "{report:?}");
        assert_eq!(report.failed_by_kind["refused"], 10, "{report:?}");
    }

    #[test]
    fn invalid_configurations_are_refused_before_any_traffic() {
        let url: http::Uri = "http://127.0.0.1:9/".parse().unwrap();
        let with = |f: fn(&mut ProbeConfig)| {
            let mut c = ProbeConfig::new(url.clone());
            f(&mut c);
            c.validate()
        };
        assert!(with(|_| {}).is_ok());
        assert!(with(|c| c.rate = 0).is_err());
        assert!(with(|c| c.connections = 0).is_err());
        assert!(with(|c| c.new_connection_ratio = 1.5).is_err());
        assert!(with(|c| c.new_connection_ratio = f64::NAN).is_err());
        assert!(with(|c| c.timeout = Duration::ZERO).is_err());
    }
}

//! zdd-probe: an open-loop load generator that proves (or disproves) zero downtime.
//!
//! Requests are scheduled at a fixed rate whatever the server does (open loop); each one's latency
//! counts from its scheduled send time, so a stall shows instead of slowing the probe down. A
//! request that finds all connection slots busy fails as `saturated` rather than waiting. Outcomes
//! are aggregated as they complete (totals, an HDR histogram, 100 ms timeline buckets, outages), so
//! memory does not grow with the request count.
//!
//! The API below is what the rest of the workspace builds against: [`start`] a probe, read
//! [`ProbeHandle::window`] while it runs, then [`ProbeHandle::stop`] and [`ProbeHandle::finish`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

mod aggregate;
mod client;
mod html;
mod outcome;
mod report;

use aggregate::{Aggregator, Completion};
use client::Client;
use outcome::Outcome;

pub use html::render_html;
pub use outcome::FailureKind;
pub use report::{Latency, Outage, Report, TimelineBucket, render_text};

/// See [`ProbeConfig::batch_interval`]: precise below 4000 requests/s, and the wake-ups' CPU cost
/// stays moderate above.
pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_micros(250);

/// The width of the timeline buckets, and so the granularity of [`ProbeHandle::window`].
pub const BUCKET: Duration = aggregate::BUCKET;

/// A timestamped event to mark on the report's charts (`--events FILE`, JSON lines).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
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
    /// Most requests in flight at once; one that cannot start counts as `saturated`.
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
    /// The scheduler wakes at most this often; above `1 / batch_interval` requests per second it
    /// issues small batches, each request keeping its scheduled time (so the lateness, up to this
    /// long, counts in the latency). Smaller: more precise send times, more CPU (each wake-up
    /// costs thread switches). Zero: one wake-up per request.
    pub batch_interval: Duration,
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
        }
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
        Ok(())
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

/// State shared by the scheduler, the request tasks and the handle.
struct Shared {
    origin: Instant,
    aggregator: Mutex<Aggregator>,
    sent: AtomicU64,
    /// True until the scheduler thread ends.
    scheduling: AtomicBool,
}

impl Shared {
    fn record(&self, completion: Completion) {
        let now = self.origin.elapsed();
        self.aggregator
            .lock()
            .expect("aggregator poisoned")
            .record(completion, now);
    }
}

/// Stops a probe from anywhere (a Ctrl-C handler) while another task awaits
/// [`ProbeHandle::finish`].
#[derive(Clone, Debug)]
pub struct Stopper(CancellationToken);

impl Stopper {
    pub fn stop(&self) {
        self.0.cancel();
    }
}

/// A running probe. Dropping it stops the scheduling.
pub struct ProbeHandle {
    config: ProbeConfig,
    shared: Arc<Shared>,
    stop: CancellationToken,
    /// The scheduler thread sends the instant scheduling ended.
    ended: tokio::sync::oneshot::Receiver<Instant>,
    tasks: TaskTracker,
    run_start: Instant,
    _stop_on_drop: DropGuard,
}

impl ProbeHandle {
    /// Outcomes of requests *scheduled* at or after `since` that have completed.
    ///
    /// Granularity: whole 100 ms timeline buckets ([`BUCKET`]), counted from the first bucket
    /// boundary at or after `since`, up to now. So requests scheduled in the first (up to) 100 ms
    /// after `since` may be left out, but never one scheduled before `since`: "no request reached
    /// v1 since T" is not fooled by answers to older requests. Cost: one lock and a sum over the
    /// buckets in the window.
    pub fn window(&self, since: Instant) -> WindowStats {
        let from =
            aggregate::bucket_index_ceil(since.saturating_duration_since(self.shared.origin));
        self.shared
            .aggregator
            .lock()
            .expect("aggregator poisoned")
            .window(from)
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
        self.stop.cancel();
    }

    /// Whether requests are still being scheduled (false once the duration is reached or after
    /// [`stop`](Self::stop)).
    pub fn is_scheduling(&self) -> bool {
        self.shared.scheduling.load(Ordering::Acquire)
    }

    /// A handle that can stop the probe while [`finish`](Self::finish) is awaited.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }

    /// Waits for the run to end (duration reached or [`stop`](Self::stop)) and returns the report.
    pub async fn finish(self) -> Report {
        // An error means the scheduler thread panicked: report what was measured.
        let end = self.ended.await.unwrap_or_else(|_| Instant::now());
        self.tasks.close();
        self.tasks.wait().await;
        let origin = self.shared.origin;
        let start = self.run_start.saturating_duration_since(origin);
        let end = end.saturating_duration_since(origin).max(start);
        let aggregator = {
            let mut guard = self.shared.aggregator.lock().expect("aggregator poisoned");
            std::mem::replace(
                &mut *guard,
                Aggregator::new(start, Duration::from_secs(1), self.config.timeout),
            )
        };
        let mut report = aggregator.into_report(start, end);
        report.url = self.config.url.to_string();
        report.rate = self.config.rate;
        report.connections = self.config.connections;
        report
    }
}

/// Starts a probe on the current tokio runtime.
pub fn start(config: ProbeConfig) -> Result<ProbeHandle, ProbeError> {
    config.validate()?;
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| ProbeError::Config("the probe must start inside a tokio runtime".into()))?;
    let client = Arc::new(Client::new(
        &config.url,
        config.timeout,
        &config.version_header,
        config.fallback_version_header.as_deref(),
    )?);
    let run_start = Instant::now();
    let origin = config.origin.unwrap_or(run_start);
    let interval = Duration::from_secs_f64(1.0 / f64::from(config.rate));
    let shared = Arc::new(Shared {
        origin,
        aggregator: Mutex::new(Aggregator::new(
            run_start.saturating_duration_since(origin),
            interval,
            config.timeout,
        )),
        sent: AtomicU64::new(0),
        scheduling: AtomicBool::new(true),
    });
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let scheduler = Scheduler {
        rate: config.rate,
        end: config.duration.map(|d| run_start + d),
        new_connection_ratio: config.new_connection_ratio,
        batch_interval: config.batch_interval,
        slots: Slots::spawn(config.connections, &client, &shared, &tasks, &runtime),
        shared: shared.clone(),
        run_start,
    };
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    let stop_signal = stop.clone();
    let thread_shared = shared.clone();
    std::thread::Builder::new()
        .name("zdd-probe-scheduler".into())
        .spawn(move || {
            // Cleared on the way out, even if the scheduler panics.
            let _done = SchedulingDone(thread_shared);
            let _ = ended_tx.send(scheduler.run(stop_signal));
        })
        .map_err(|err| ProbeError::Config(format!("cannot start the scheduler thread: {err}")))?;
    Ok(ProbeHandle {
        config,
        shared,
        _stop_on_drop: stop.clone().drop_guard(),
        stop,
        ended,
        tasks,
        run_start,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("invalid probe configuration: {0}")]
    Config(String),
}

/// Issues requests at their scheduled times.
///
/// It runs on its own OS thread rather than on tokio's timer, whose millisecond granularity would
/// add up to 1 ms of lateness to every request (and so to every latency, which counts from the
/// scheduled time). A plain thread sleeping to the next due time (with the kernel's timer slack
/// lowered) is accurate to tens of microseconds.
struct Scheduler {
    rate: u32,
    end: Option<Instant>,
    new_connection_ratio: f64,
    batch_interval: Duration,
    slots: Slots,
    shared: Arc<Shared>,
    run_start: Instant,
}

/// The longest the scheduler sleeps before looking at the stop signal again.
const STOP_CHECK: Duration = Duration::from_millis(20);

impl Scheduler {
    /// Runs until the end or a stop; returns when scheduling ended.
    fn run(self, stop: CancellationToken) -> Instant {
        lower_timer_slack();
        let mut seq: u64 = 0;
        let mut last_wake = self.run_start;
        loop {
            let due = self.due(seq);
            if let Some(end) = self.end
                && due >= end
            {
                return end;
            }
            let next = due.max(last_wake + self.batch_interval);
            loop {
                if stop.is_cancelled() {
                    return Instant::now();
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                std::thread::sleep((next - now).min(STOP_CHECK));
            }
            // Issue every request that is due (several per wake-up at high rates, or after a late
            // wake-up on a busy machine), each with its own scheduled time.
            let now = Instant::now();
            last_wake = now;
            loop {
                let scheduled = self.due(seq);
                if scheduled > now || self.end.is_some_and(|end| scheduled >= end) {
                    break;
                }
                self.issue(seq, scheduled);
                seq += 1;
            }
        }
    }

    fn due(&self, seq: u64) -> Instant {
        let nanos = u128::from(seq) * 1_000_000_000 / u128::from(self.rate);
        self.run_start + Duration::from_nanos(nanos as u64)
    }

    fn issue(&self, seq: u64, scheduled: Instant) {
        self.shared.sent.fetch_add(1, Ordering::Relaxed);
        let since_zero = scheduled.saturating_duration_since(self.shared.origin);
        let job = Job {
            seq,
            scheduled,
            since_zero,
            fresh: uses_fresh_connection(seq, self.new_connection_ratio),
        };
        let idle = self.slots.idle.lock().expect("slots poisoned").pop();
        // An idle slot's channel is empty, so the send only fails if its task is gone.
        let sent = idle.is_some_and(|slot| self.slots.jobs[slot].try_send(job).is_ok());
        if !sent {
            self.shared.record(Completion {
                seq,
                scheduled: since_zero,
                outcome: Outcome::failed(FailureKind::Saturated),
                latency: Duration::ZERO,
            });
        }
    }
}

/// A request to send, handed to an idle connection slot.
struct Job {
    seq: u64,
    scheduled: Instant,
    since_zero: Duration,
    fresh: bool,
}

/// The connection slots: one task each, with its own keep-alive connection.
struct Slots {
    /// Slots waiting for a job; the most recently used on top, so few connections stay warm.
    idle: Arc<Mutex<Vec<usize>>>,
    jobs: Vec<mpsc::Sender<Job>>,
}

impl Slots {
    fn spawn(
        count: usize,
        client: &Arc<Client>,
        shared: &Arc<Shared>,
        tasks: &TaskTracker,
        runtime: &tokio::runtime::Handle,
    ) -> Slots {
        let idle = Arc::new(Mutex::new((0..count).rev().collect::<Vec<_>>()));
        let jobs = (0..count)
            .map(|slot| {
                let (sender, receiver) = mpsc::channel(1);
                tasks.spawn_on(
                    run_slot(slot, receiver, client.clone(), shared.clone(), idle.clone()),
                    runtime,
                );
                sender
            })
            .collect();
        Slots { idle, jobs }
    }
}

/// One connection slot: sends each job it is given, watching its idle connection in between.
/// Ends when the scheduler drops its sender.
async fn run_slot(
    slot: usize,
    mut jobs: mpsc::Receiver<Job>,
    client: Arc<Client>,
    shared: Arc<Shared>,
    idle: Arc<Mutex<Vec<usize>>>,
) {
    let mut connection: Option<client::Connection> = None;
    loop {
        let job = match connection.as_mut() {
            Some(open) => {
                let next = tokio::select! {
                    job = jobs.recv() => Some(job),
                    () = open.closed() => None,
                };
                match next {
                    Some(job) => job,
                    None => {
                        // The server closed the idle connection: reconnect on the next job.
                        connection = None;
                        continue;
                    }
                }
            }
            None => jobs.recv().await,
        };
        let Some(job) = job else { return };
        let outcome = client.execute(&mut connection, job.fresh).await;
        let latency = job.scheduled.elapsed();
        shared.record(Completion {
            seq: job.seq,
            scheduled: job.since_zero,
            outcome,
            latency,
        });
        idle.lock().expect("slots poisoned").push(slot);
    }
}

struct SchedulingDone(Arc<Shared>);

impl Drop for SchedulingDone {
    fn drop(&mut self) {
        self.0.scheduling.store(false, Ordering::Release);
    }
}

/// Asks the kernel to wake this thread on time (the default slack is 50 µs). Best effort.
fn lower_timer_slack() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_timerslack(1_000);
}

/// Spreads fresh connections evenly: exactly `ratio` of any long run of requests.
fn uses_fresh_connection(seq: u64, ratio: f64) -> bool {
    ((seq + 1) as f64 * ratio).floor() > (seq as f64 * ratio).floor()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_connections_follow_the_ratio_exactly() {
        let count = |ratio| {
            (0..1000)
                .filter(|s| uses_fresh_connection(*s, ratio))
                .count()
        };
        assert_eq!(count(0.0), 0);
        assert_eq!(count(0.1), 100);
        assert_eq!(count(0.25), 250);
        assert_eq!(count(1.0), 1000);
    }

    #[test]
    fn the_handle_can_move_between_tasks() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: T) {}
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let _guard = runtime.enter();
        let mut config = ProbeConfig::new("http://127.0.0.1:9/".parse().unwrap());
        config.rate = 1;
        let probe = start(config).unwrap();
        send_sync(&probe);
        probe.stop();
        send(probe.finish());
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

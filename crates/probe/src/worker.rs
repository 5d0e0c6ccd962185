//! The probe's worker threads. Each runs a single-threaded tokio runtime holding its share of the
//! slots (one task per slot: a slot is a request that may be in flight), its pool of idle
//! keep-alive connections, which its slots share ([`Pool`]), and one alarm.
//!
//! No central scheduler hands requests out: a free slot claims the next request from the shared
//! [`Schedule`] (one atomic add) once it is due and sends it; when none is due it parks (the most
//! recently used on top, so few tasks stay warm in the caches at low rates), and the worker's alarm wakes
//! as many parked slots as requests have come due. A slot never holds a request ahead of time, so
//! every slot not sending is free for whatever comes due first. The alarm is precise: tokio's
//! timer has a 1 ms granularity, which would add up to 1 ms to every latency (it counts from the
//! scheduled time), so each worker sleeps on a `timerfd` (no timer slack), armed for its earliest
//! deadline, woken at most every `batch_interval`. The same alarm times requests out (tokio's timer would
//! cost an eventfd write per request to re-arm its driver). All of this stays on the worker's
//! thread: no wake-up crosses threads on the request path.
//!
//! Outcomes are buffered per worker and merged into the shared aggregator at most every
//! [`FLUSH_INTERVAL`] (or every [`MAX_BUFFERED`] outcomes), so the lock is taken about a thousand
//! times a second whatever the rate.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::aggregate::Completion;
use crate::client::Client;
use crate::outcome::{FailureKind, RequestOutcome};
use crate::pool::Pool;
use crate::schedule::Claim;

/// Buffered outcomes reach the shared aggregator within about this long.
const FLUSH_INTERVAL: Duration = Duration::from_millis(1);
/// ... or as soon as this many are buffered.
const MAX_BUFFERED: usize = 256;

/// What a worker thread needs, built on the caller's thread so that errors surface in `start`.
pub(crate) struct WorkerSetup {
    runtime: tokio::runtime::Runtime,
    alarm: Alarm,
    slots: usize,
}

impl WorkerSetup {
    pub(crate) fn new(slots: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let alarm = {
            let _context = runtime.enter();
            Alarm::new()?
        };
        Ok(WorkerSetup {
            runtime,
            alarm,
            slots,
        })
    }

    /// Runs the worker's slots until the schedule ends and every request in flight has finished.
    pub(crate) fn run(
        self,
        shared: Arc<Shared>,
        client: Arc<Client>,
        config: WorkerConfig,
        stop: CancellationToken,
    ) {
        let WorkerSetup {
            runtime,
            alarm,
            slots,
        } = self;
        let worker = Arc::new(Worker::new(shared, client, config));
        // Plain tasks on the single-threaded runtime (not a LocalSet, whose tasks woken by I/O
        // go through a locked queue and an eventfd write each).
        // The alarm task is a task too: waking the `block_on` future itself would cost an eventfd
        // write each time.
        runtime.block_on(async {
            let driver = tokio::spawn(drive(worker.clone(), alarm, stop));
            let handles: Vec<_> = (0..slots)
                .map(|_| tokio::spawn(run_slot(worker.clone())))
                .collect();
            for handle in handles {
                // A panicking slot loses its own request only.
                let _ = handle.await;
            }
            driver.abort();
            // Closed while the runtime that registered them is still there.
            worker.pool.clear();
        });
        let mut local = worker.lock();
        worker.flush(&mut local, Instant::now());
    }
}

#[derive(Clone, Copy)]
pub(crate) struct WorkerConfig {
    pub new_connection_ratio: f64,
    pub batch_interval: Duration,
}

struct Worker {
    shared: Arc<Shared>,
    client: Arc<Client>,
    config: WorkerConfig,
    local: Mutex<Local>,
    /// Idle keep-alive connections, shared by the worker's slots.
    pool: Pool,
}

/// The worker's own state; only its thread touches it.
struct Local {
    /// Free slots without a claim, the most recently used on top.
    parked: Vec<Arc<Signal>>,
    /// Requests in flight and when they time out, in send order (so in deadline order: the
    /// timeout is the same for all). Entries of requests that finished are skipped (their signal
    /// was re-armed since).
    timeouts: VecDeque<(Instant, Arc<Signal>, u64)>,
    completions: Vec<Completion>,
    last_flush: Instant,
    /// The alarm task, to wake when its next deadline may have moved earlier.
    driver: Option<Waker>,
    poked: bool,
}

impl Worker {
    fn new(shared: Arc<Shared>, client: Arc<Client>, config: WorkerConfig) -> Self {
        Worker {
            shared,
            client,
            config,
            local: Mutex::new(Local {
                parked: Vec::new(),
                timeouts: VecDeque::new(),
                completions: Vec::new(),
                last_flush: Instant::now(),
                driver: None,
                poked: false,
            }),
            pool: Pool::default(),
        }
    }

    /// Only this worker's thread takes it: never contended.
    fn lock(&self) -> MutexGuard<'_, Local> {
        self.local.lock().expect("worker state poisoned")
    }

    fn poke(&self, local: &mut Local) {
        local.poked = true;
        if let Some(driver) = local.driver.take() {
            driver.wake();
        }
    }

    fn park(&self, signal: &Arc<Signal>) {
        signal.arm();
        let mut local = self.lock();
        let was_empty = local.parked.is_empty();
        local.parked.push(signal.clone());
        self.shared.schedule.parked.fetch_add(1, Ordering::Relaxed);
        // Otherwise the alarm is set for the next due request already.
        if was_empty {
            self.poke(&mut local);
        }
    }

    /// Fires `signal` at `deadline` unless it is re-armed before (the request finished).
    fn expire_at(&self, deadline: Instant, signal: &Arc<Signal>) {
        let generation = signal.arm();
        let mut local = self.lock();
        let was_empty = local.timeouts.is_empty();
        local
            .timeouts
            .push_back((deadline, signal.clone(), generation));
        if was_empty {
            self.poke(&mut local);
        }
    }

    fn record(&self, completion: Completion) {
        let mut local = self.lock();
        local.completions.push(completion);
        let now = Instant::now();
        if local.completions.len() >= MAX_BUFFERED || now >= local.last_flush + FLUSH_INTERVAL {
            self.flush(&mut local, now);
        } else if local.completions.len() == 1 {
            // The alarm task flushes it in time.
            self.poke(&mut local);
        }
    }

    fn flush(&self, local: &mut Local, now: Instant) {
        local.last_flush = now;
        if local.completions.is_empty() {
            return;
        }
        let since_zero = now.saturating_duration_since(self.shared.origin);
        let mut aggregator = self.shared.aggregator.lock().expect("aggregator poisoned");
        for completion in local.completions.drain(..) {
            aggregator.record(completion, since_zero);
        }
    }

    /// When the alarm task must next act: parked slots to wake for the next due request, a
    /// request to time out, buffered outcomes to flush.
    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let mut local = self.lock();
        let schedule = &self.shared.schedule;
        let mut deadline: Option<Instant> = None;
        let mut consider = |at: Instant| deadline = Some(deadline.map_or(at, |d| d.min(at)));
        if !local.parked.is_empty() {
            match schedule.next_due() {
                // Woken when it is due, a parked slot claims and sends it at once.
                Some(due) => consider(due),
                // Ended or stopped: the parked slots must wake to exit.
                None => consider(now),
            }
        }
        while let Some((_, signal, generation)) = local.timeouts.front() {
            if signal.generation() == *generation {
                break;
            }
            local.timeouts.pop_front();
        }
        if let Some((expires, _, _)) = local.timeouts.front() {
            consider(*expires);
        }
        if !local.completions.is_empty() {
            consider(local.last_flush + FLUSH_INTERVAL);
        }
        deadline
    }

    /// Wakes the slots whose time has come, and flushes outcomes when due.
    fn pass(&self, now: Instant) {
        let schedule = &self.shared.schedule;
        let mut fire = Vec::new();
        let mut local = self.lock();
        while let Some((expires, signal, generation)) = local.timeouts.front() {
            if signal.generation() == *generation {
                if *expires > now {
                    break;
                }
                fire.push(signal.clone());
            }
            local.timeouts.pop_front();
        }
        if !local.parked.is_empty() {
            let wanted = match schedule.next_due() {
                None => local.parked.len(),
                Some(_) => {
                    let coming = schedule.unclaimed_due_by(now);
                    usize::try_from(coming)
                        .unwrap_or(usize::MAX)
                        .min(local.parked.len())
                }
            };
            // A woken slot stays counted in `schedule.parked` until it runs: free until then.
            for _ in 0..wanted {
                fire.push(local.parked.pop().expect("counted"));
            }
        }
        if !local.completions.is_empty() && now >= local.last_flush + FLUSH_INTERVAL {
            self.flush(&mut local, now);
        }
        drop(local);
        for signal in fire {
            signal.fire();
        }
    }
}

/// The worker's alarm task: wakes slots when their request is due, at most every batch interval.
/// Never returns; the worker ends when its slots do.
async fn drive(worker: Arc<Worker>, mut alarm: Alarm, stop: CancellationToken) {
    let batch_interval = worker.config.batch_interval;
    let mut stop_signal = Some(Box::pin(stop.cancelled_owned()));
    let mut last_pass: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let wake_at = worker.next_deadline(now).map(|at| match last_pass {
            Some(last) => at.max(last + batch_interval),
            None => at,
        });
        if wake_at.is_some_and(|at| at <= now) {
            worker.pass(now);
            last_pass = Some(now);
            // Let the slots just woken run (and claim) before looking again.
            tokio::task::yield_now().await;
            continue;
        }
        // Sleep until the alarm, a slot's poke (the deadline may have moved) or the stop.
        poll_fn(|cx| {
            {
                let mut local = worker.lock();
                if std::mem::take(&mut local.poked) {
                    return Poll::Ready(());
                }
                local.driver = Some(cx.waker().clone());
            }
            if let Some(signal) = stop_signal.as_mut()
                && signal.as_mut().poll(cx).is_ready()
            {
                stop_signal = None;
                // `stop()` recorded its instant already; a dropped handle did not.
                worker.shared.schedule.stop(Instant::now());
                return Poll::Ready(());
            }
            match wake_at {
                Some(at) => alarm.poll_until(at, cx),
                None => Poll::Pending,
            }
        })
        .await;
    }
}

/// One slot: claims the next request, waits for its time, sends it (on a connection of the
/// worker's pool), records it.
async fn run_slot(worker: Arc<Worker>) {
    let signal = Arc::new(Signal::default());
    let schedule = &worker.shared.schedule;
    // Free since before its claim (new, or woken from parked): a late request is the probe's own
    // lateness (counted in the latency), not saturation.
    let mut unparked = true;
    loop {
        let now = Instant::now();
        let (seq, due) = match schedule.claim(now) {
            Claim::Ended => return,
            Claim::Later => {
                worker.park(&signal);
                signal.wait().await;
                // Counted free until now, not only until the alarm woke it: a busy slot that
                // claims the request first (after a stall of the thread) must not take it for
                // saturated.
                schedule.parked.fetch_sub(1, Ordering::Relaxed);
                unparked = true;
                continue;
            }
            Claim::Request { seq, due } => (seq, due),
        };
        let since_zero = due.saturating_duration_since(worker.shared.origin);
        if !unparked && schedule.found_every_slot_busy(now, due) {
            // It came due while every slot was busy (a free one would have claimed it on time).
            worker.shared.sent.fetch_add(1, Ordering::Relaxed);
            worker.record(Completion {
                seq,
                scheduled: since_zero,
                outcome: RequestOutcome::failed(FailureKind::Saturated),
                latency: Duration::ZERO,
            });
            continue;
        }
        unparked = false;
        worker.shared.sent.fetch_add(1, Ordering::Relaxed);
        let fresh = uses_fresh_connection(seq, worker.config.new_connection_ratio);
        worker.expire_at(Instant::now() + worker.client.timeout(), &signal);
        let outcome = worker
            .client
            .execute_seq(&worker.pool, fresh, seq, signal.wait())
            .await;
        // Cancels the timeout (its entry no longer matches).
        signal.arm();
        let latency = due.elapsed();
        worker.record(Completion {
            seq,
            scheduled: since_zero,
            outcome,
            latency,
        });
    }
}

/// Spreads fresh connections evenly: exactly `ratio` of any long run of requests.
pub(crate) fn uses_fresh_connection(seq: u64, ratio: f64) -> bool {
    ((seq + 1) as f64 * ratio).floor() > (seq as f64 * ratio).floor()
}

/// A one-shot wake-up for one slot, re-armed before each wait.
#[derive(Default)]
struct Signal {
    fired: AtomicBool,
    /// Bumped by each arming, so a stale timeout entry can tell it no longer applies.
    generation: AtomicU64,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    /// Prepares a new wait; returns its generation.
    fn arm(&self) -> u64 {
        self.fired.store(false, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        if let Some(waker) = self.waker.lock().expect("signal poisoned").take() {
            waker.wake();
        }
    }

    fn wait(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            if self.fired.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            *self.waker.lock().expect("signal poisoned") = Some(cx.waker().clone());
            // Fired between the check and the registration: do not miss it.
            if self.fired.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

/// A `timerfd` in the worker's reactor: wakes the thread within microseconds of the deadline.
struct Alarm {
    timer: AsyncFd<RawTimer>,
    armed: Option<Instant>,
}

struct RawTimer(TimerFd);

impl AsRawFd for RawTimer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Alarm {
    /// Must be called inside the worker's runtime context.
    fn new() -> std::io::Result<Self> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // SAFETY: `RawTimer` owns the timerfd, so the descriptor stays open and the same for as
        // long as the `AsyncFd` holds it.
        let timer = unsafe { AsyncFd::register_with_interest(RawTimer(timer), Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        Ok(Alarm { timer, armed: None })
    }

    /// Ready once `at` has passed.
    fn poll_until(&mut self, at: Instant, cx: &mut Context<'_>) -> Poll<()> {
        if self.armed != Some(at) {
            let now = Instant::now();
            if at <= now {
                return Poll::Ready(());
            }
            // A zero expiration would disarm the timer; `at` is in the future.
            let expiration = Expiration::OneShot(TimeSpec::from_duration(at - now));
            if self
                .timer
                .get_ref()
                .0
                .set(expiration, TimerSetTimeFlags::empty())
                .is_err()
            {
                // Cannot happen with a valid timerfd and time; fall back to looking again.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.armed = Some(at);
        }
        loop {
            match self.timer.poll_read_ready(cx) {
                Poll::Ready(Ok(mut ready)) => {
                    // Consume the expiration; EAGAIN when it was re-armed before being read.
                    let mut expirations = [0u8; 8];
                    let _ = nix::unistd::read(ready.get_inner().0.as_fd(), &mut expirations);
                    ready.clear_ready();
                    if Instant::now() >= at {
                        self.armed = None;
                        return Poll::Ready(());
                    }
                    // An expiration of an earlier arming: keep waiting for this one.
                }
                Poll::Ready(Err(_)) => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::aggregate::Aggregator;
    use crate::schedule::Schedule;

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

    /// After a stall of the worker's thread, a request is late while one slot is parked and
    /// another busy. The alarm wakes the parked slot, but the busy one, freed meanwhile, runs
    /// first and claims the request: a slot was free for it, so the lateness is the probe's own
    /// (latency), not `saturated` (a failure that never went out).
    #[test]
    fn a_slot_woken_for_a_request_is_free_until_it_runs() {
        let start = Instant::now();
        let url: http::Uri = "http://127.0.0.1:9/".parse().unwrap();
        let shared = || {
            Arc::new(Shared {
                origin: start,
                schedule: Schedule::new(start, 1000, None, Duration::from_micros(100)),
                aggregator: Mutex::new(Aggregator::new(
                    Duration::ZERO,
                    Duration::from_millis(1),
                    Duration::from_secs(1),
                )),
                sent: AtomicU64::new(0),
                workers: std::sync::atomic::AtomicUsize::new(1),
            })
        };
        let client =
            Arc::new(Client::new(&url, Duration::from_secs(1), "X-Version", None).unwrap());
        let config = WorkerConfig {
            new_connection_ratio: 0.0,
            batch_interval: Duration::from_micros(100),
        };
        let worker = Worker::new(shared(), client, config);
        let parked = Arc::new(Signal::default());
        worker.park(&parked);
        // 5 ms late: requests 0 to 5 are due.
        let late = start + Duration::from_millis(5);
        worker.pass(late);
        assert!(
            parked.fired.load(Ordering::Acquire),
            "the parked slot is woken"
        );
        let schedule = &worker.shared.schedule;
        let Claim::Request { seq: 0, due } = schedule.claim(late) else {
            panic!("request 0 is due");
        };
        assert!(
            !schedule.found_every_slot_busy(late, due),
            "a woken slot was free for it"
        );
        // The same lateness with no slot free at all is saturation.
        let busy = shared();
        let Claim::Request { due, .. } = busy.schedule.claim(late) else {
            panic!("request 0 is due");
        };
        assert!(busy.schedule.found_every_slot_busy(late, due));
    }

    #[test]
    fn the_alarm_wakes_on_time_not_on_tokios_millisecond() {
        let setup = WorkerSetup::new(0).unwrap();
        let mut alarm = setup.alarm;
        let lateness = setup.runtime.block_on(async {
            let mut lateness = Vec::new();
            for _ in 0..20 {
                let at = Instant::now() + Duration::from_micros(300);
                poll_fn(|cx| alarm.poll_until(at, cx)).await;
                let now = Instant::now();
                assert!(now >= at, "never early");
                lateness.push(now - at);
            }
            lateness.sort();
            lateness[lateness.len() / 2]
        });
        // Generous for a loaded machine; tokio's own timer rounds up to its next millisecond.
        assert!(
            lateness < Duration::from_millis(5),
            "median lateness {lateness:?}"
        );
    }
}

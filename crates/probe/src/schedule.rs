//! The open-loop schedule, shared by every worker thread: request `k` is due at
//! `start + k / rate`, and a free connection slot takes the next request once it is due by bumping
//! one atomic index. There is no central scheduler: whichever slot is free claims the next request.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a free slot gets when it asks for the next request.
#[derive(Debug, PartialEq)]
pub(crate) enum Claim {
    /// Request `seq`, due at `due` (now or already past).
    Request { seq: u64, due: Instant },
    /// The next request is not due yet: park until it is.
    Later,
    /// The run's end or a stop: no more requests.
    Ended,
}

pub(crate) struct Schedule {
    start: Instant,
    rate: u32,
    /// Requests due at or after this are not sent (`--duration`).
    end: Option<Instant>,
    /// The next request nobody has claimed yet.
    next: AtomicU64,
    /// When [`stop`](Self::stop) was called: no request is claimed after it.
    stopped_at: OnceLock<Instant>,
    /// A request claimed more than this long after it was due found every slot busy
    /// (`saturated`) unless some slot was parked (then the probe itself was late: it counts as
    /// latency).
    pub(crate) slack: Duration,
    /// Free slots, across all workers: parked, or woken and not running yet.
    pub(crate) parked: AtomicUsize,
}

impl Schedule {
    pub(crate) fn new(
        start: Instant,
        rate: u32,
        end: Option<Instant>,
        batch_interval: Duration,
    ) -> Self {
        Schedule {
            start,
            rate,
            end,
            next: AtomicU64::new(0),
            stopped_at: OnceLock::new(),
            slack: batch_interval.max(Duration::from_micros(100)),
            parked: AtomicUsize::new(0),
        }
    }

    pub(crate) fn due(&self, seq: u64) -> Instant {
        let nanos = u128::from(seq) * 1_000_000_000 / u128::from(self.rate);
        self.start + Duration::from_nanos(nanos as u64)
    }

    /// Takes the next request if it is due by `now`. A slot never holds a request ahead of time:
    /// until then it is free (parked), available for whatever comes due first.
    pub(crate) fn claim(&self, now: Instant) -> Claim {
        let mut seq = self.next.load(Ordering::Relaxed);
        loop {
            if self.is_stopped() {
                return Claim::Ended;
            }
            let due = self.due(seq);
            if self.end.is_some_and(|end| due >= end) {
                return Claim::Ended;
            }
            if due > now {
                return Claim::Later;
            }
            match self.next.compare_exchange_weak(
                seq,
                seq + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Claim::Request { seq, due },
                Err(current) => seq = current,
            }
        }
    }

    /// Whether a request due at `due`, claimed at `now` by a slot busy since before it came due,
    /// found every slot busy (`saturated`). A free slot (parked, or woken and not running yet)
    /// means the probe itself was late instead: that counts as latency.
    pub(crate) fn found_every_slot_busy(&self, now: Instant, due: Instant) -> bool {
        now.saturating_duration_since(due) > self.slack && self.parked.load(Ordering::Relaxed) == 0
    }

    /// When the next unclaimed request is due; `None` once no more will be sent.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        if self.is_stopped() {
            return None;
        }
        let due = self.due(self.next.load(Ordering::Relaxed));
        if self.end.is_some_and(|end| due >= end) {
            None
        } else {
            Some(due)
        }
    }

    /// How many unclaimed requests are due by `until` (so how many parked slots to wake).
    pub(crate) fn unclaimed_due_by(&self, until: Instant) -> u64 {
        let next = self.next.load(Ordering::Relaxed);
        let until = match self.end {
            Some(end) if end <= until => end - Duration::from_nanos(1),
            _ => until,
        };
        let Some(elapsed) = until.checked_duration_since(self.start) else {
            return 0;
        };
        // The last request due at or before `until`.
        let last = elapsed.as_nanos() * u128::from(self.rate) / 1_000_000_000;
        (last as u64 + 1).saturating_sub(next)
    }

    /// Stops the scheduling (once; later calls keep the first instant).
    pub(crate) fn stop(&self, at: Instant) {
        let _ = self.stopped_at.set(at);
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped_at.get().is_some()
    }

    /// When scheduling ended: the stop, or the end of the duration, whichever came first.
    pub(crate) fn ended_at(&self) -> Option<Instant> {
        match (self.stopped_at.get().copied(), self.end) {
            (Some(stopped), Some(end)) => Some(stopped.min(end)),
            (stopped, end) => stopped.or(end),
        }
    }

    /// Whether requests are still being scheduled.
    pub(crate) fn is_running(&self, now: Instant) -> bool {
        !self.is_stopped() && self.end.is_none_or(|end| now < end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn requests_are_claimed_in_order_once_due() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 100, Some(start + MS(50)), Duration::ZERO);
        // 10 ms apart.
        assert_eq!(schedule.claim(start), Claim::Request { seq: 0, due: start });
        assert_eq!(schedule.claim(start + MS(9)), Claim::Later);
        assert_eq!(
            schedule.claim(start + MS(10)),
            Claim::Request {
                seq: 1,
                due: start + MS(10)
            }
        );
        assert_eq!(schedule.next_due(), Some(start + MS(20)));
        // Late: everything due by then is claimable at once.
        assert_eq!(schedule.unclaimed_due_by(start + MS(35)), 2);
        for seq in 2..5 {
            assert!(matches!(
                schedule.claim(start + MS(45)),
                Claim::Request { seq: s, .. } if s == seq
            ));
        }
        // Request 5 would be due at 50 ms, the end.
        assert_eq!(schedule.claim(start + MS(49)), Claim::Ended);
        assert_eq!(schedule.next_due(), None);
        assert_eq!(schedule.unclaimed_due_by(start + MS(100)), 0);
    }

    #[test]
    fn a_stop_ends_claims_and_keeps_its_first_instant() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 1000, None, Duration::ZERO);
        assert!(schedule.is_running(start + MS(5)));
        schedule.stop(start + MS(5));
        schedule.stop(start + MS(9));
        assert_eq!(schedule.claim(start + MS(6)), Claim::Ended);
        assert_eq!(schedule.ended_at(), Some(start + MS(5)));
        assert!(!schedule.is_running(start + MS(5)));
    }
}

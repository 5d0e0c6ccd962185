//! The open-file limit: recognizing it, warning about failures that can repeat thousands of times
//! a second at most once a second (with their count, so the log says how bad it is without
//! becoming the next bottleneck), and giving the descriptors that free up to the requests in
//! flight before new clients.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// At most one warning per this long.
pub(super) const WARN_EVERY: Duration = Duration::from_secs(1);

const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// Out of file descriptors, for the process (`EMFILE`) or the whole system (`ENFILE`). Both
/// numbers are the same on Linux and the BSDs.
pub(super) fn is_fd_limit(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(EMFILE | ENFILE))
}

/// One kind of failure, counted, and warned about at most once per [`WARN_EVERY`] across every
/// thread that records it.
pub(super) struct Throttled {
    what: &'static str,
    origin: Instant,
    /// Failures since the last warning.
    count: AtomicU64,
    /// When the next warning may go out, in milliseconds since `origin`.
    next_ms: AtomicU64,
}

impl Throttled {
    pub(super) fn new(what: &'static str) -> Self {
        Throttled {
            what,
            origin: Instant::now(),
            count: AtomicU64::new(0),
            next_ms: AtomicU64::new(0),
        }
    }

    /// Counts one failure; warns when the last warning is old enough. Returns the count it
    /// warned with, if it did.
    pub(super) fn record(&self, err: &io::Error) -> Option<u64> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let now_ms = self.origin.elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now_ms < next {
            return None;
        }
        let then = now_ms + WARN_EVERY.as_millis() as u64;
        // One thread wins the second; the others' failures go into its count or the next one.
        if self
            .next_ms
            .compare_exchange(next, then, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        let failures = self.count.swap(0, Ordering::Relaxed);
        let hint = if is_fd_limit(err) {
            " (at the open-file limit: raise `ulimit -n`, or send fewer connections)"
        } else {
            ""
        };
        tracing::warn!(
            failures,
            "router {} failed: {err}; {failures} failure(s) since the last warning{hint}",
            self.what
        );
        Some(failures)
    }
}

/// Closed for a moment when a request in flight could not get a descriptor for its upstream
/// connection: the entry points stop accepting, so the descriptors that free up (answers that
/// end, clients that leave) go to the requests already accepted. Otherwise new clients would take
/// them all and every request would wait for an upstream connection it cannot open.
pub(super) struct AcceptGate {
    origin: Instant,
    /// Closed until then, in milliseconds since `origin`.
    closed_until_ms: AtomicU64,
}

impl AcceptGate {
    pub(super) fn new() -> Self {
        AcceptGate {
            origin: Instant::now(),
            closed_until_ms: AtomicU64::new(0),
        }
    }

    pub(super) fn close_for(&self, pause: Duration) {
        let until = (self.origin.elapsed() + pause).as_millis() as u64;
        self.closed_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// How long it stays closed; `None` when open.
    pub(super) fn closed_for(&self) -> Option<Duration> {
        let until = self.closed_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return None;
        }
        let now = self.origin.elapsed().as_millis() as u64;
        (until > now).then(|| Duration::from_millis(until - now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_recognized() {
        assert!(is_fd_limit(&io::Error::from_raw_os_error(EMFILE)));
        assert!(is_fd_limit(&io::Error::from_raw_os_error(ENFILE)));
        assert!(!is_fd_limit(&io::Error::from(
            io::ErrorKind::ConnectionRefused
        )));
    }

    #[test]
    fn failures_in_one_second_make_one_warning_and_are_counted() {
        let throttled = Throttled::new("accept");
        let err = io::Error::from_raw_os_error(EMFILE);
        let start = Instant::now();
        let warned: Vec<u64> = (0..1000).filter_map(|_| throttled.record(&err)).collect();
        let seconds = start.elapsed().as_secs();
        // The first failure warns at once; then one warning a second at most (usually none: the
        // loop takes microseconds), and no failure is lost from the counts.
        assert_eq!(warned.first(), Some(&1));
        assert!(warned.len() as u64 <= seconds + 1, "{warned:?}");
        let pending = throttled.count.load(Ordering::Relaxed);
        assert_eq!(warned.iter().sum::<u64>() + pending, 1000);
    }

    #[test]
    fn the_gate_closes_for_the_longest_pause_asked() {
        let gate = AcceptGate::new();
        assert_eq!(gate.closed_for(), None);
        gate.close_for(Duration::from_secs(60));
        gate.close_for(Duration::from_secs(1));
        assert!(gate.closed_for().unwrap() > Duration::from_secs(30));
    }
}

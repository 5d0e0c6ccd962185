//! The open-file limit: recognizing it, and warning about it at most once a second with the count
//! of failures since the last warning (at a high rate it can fail thousands of times a second).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;

/// At most one warning per this long.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// Out of file descriptors, for the process (`EMFILE`) or the whole system (`ENFILE`).
pub(crate) fn is_fd_limit(err: &io::Error) -> bool {
    let code = err.raw_os_error();
    code == Some(Errno::EMFILE as i32) || code == Some(Errno::ENFILE as i32)
}

/// Connects that failed for want of a descriptor, warned about at most once per [`WARN_EVERY`]
/// across the worker threads.
pub(crate) struct Throttled {
    origin: Instant,
    /// Failures since the last warning.
    count: AtomicU64,
    /// When the next warning may go out, in milliseconds since `origin`.
    next_ms: AtomicU64,
}

impl Default for Throttled {
    fn default() -> Self {
        Throttled {
            origin: Instant::now(),
            count: AtomicU64::new(0),
            next_ms: AtomicU64::new(0),
        }
    }
}

impl Throttled {
    /// Counts one failure; warns when the last warning is old enough. Returns the count it
    /// warned with, if it did.
    pub(crate) fn record(&self, err: &io::Error) -> Option<u64> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let now_ms = self.origin.elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now_ms < next {
            return None;
        }
        let then = now_ms + WARN_EVERY.as_millis() as u64;
        // One thread wins the second; the others' failures go into its count or the next one.
        self.next_ms
            .compare_exchange(next, then, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        let failures = self.count.swap(0, Ordering::Relaxed);
        tracing::warn!(
            failures,
            "probe connect failed: {err}; {failures} failure(s) since the last warning \
             (requests wait for a connection meanwhile: raise `ulimit -n`, or lower the rate or \
             the timeout)"
        );
        Some(failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_recognized() {
        assert!(is_fd_limit(&io::Error::from_raw_os_error(
            Errno::EMFILE as i32
        )));
        assert!(is_fd_limit(&io::Error::from_raw_os_error(
            Errno::ENFILE as i32
        )));
        assert!(!is_fd_limit(&io::Error::from(
            io::ErrorKind::ConnectionRefused
        )));
    }

    #[test]
    fn failures_in_one_second_make_one_warning_and_are_counted() {
        let throttled = Throttled::default();
        let err = io::Error::from_raw_os_error(Errno::EMFILE as i32);
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
}

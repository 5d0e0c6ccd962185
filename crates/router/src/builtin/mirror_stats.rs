//! What a mirror target made of its copies: counters shared by every worker (atomics, and a
//! latency histogram under a lock taken once per answered copy), read as [`MirrorStats`].

use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use http::StatusCode;

use super::lock;
use super::upstream::UpstreamError;

/// A mirror target's counters since its mirror was set (a table whose mirror differs resets them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MirrorStats {
    /// The mirror's name (a version).
    pub name: String,
    /// Copies taken from the queue to be sent: each ends answered, failed, or is still in flight.
    pub sent: u64,
    /// Answered 1xx to 3xx.
    pub ok: u64,
    pub http_4xx: u64,
    pub http_5xx: u64,
    /// Copies that got no answer, by kind: `refused`, `reset`, `timeout`, `no_endpoint`, `other`.
    /// Only kinds that happened are listed.
    pub failed_by_kind: BTreeMap<String, u64>,
    /// Not sent: the worker's queue of copies was full.
    pub dropped: u64,
    /// Not sent: the request's body was larger than a copy may carry.
    pub skipped_too_large: u64,
    /// Latency of the answered copies (connect to the answer's last byte), in milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Why a copy got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    Refused,
    Reset,
    Timeout,
    /// The mirror has no endpoint.
    NoEndpoint,
    Other,
}

const FAILURES: [Failure; 5] = [
    Failure::Refused,
    Failure::Reset,
    Failure::Timeout,
    Failure::NoEndpoint,
    Failure::Other,
];

impl Failure {
    fn name(self) -> &'static str {
        match self {
            Failure::Refused => "refused",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::NoEndpoint => "no_endpoint",
            Failure::Other => "other",
        }
    }

    pub(super) fn of(err: &UpstreamError) -> Failure {
        match err {
            UpstreamError::ConnectTimeout => Failure::Timeout,
            UpstreamError::Connect(err) => Failure::of_io(err),
            UpstreamError::Http(err) => {
                if err.is_timeout() {
                    return Failure::Timeout;
                }
                let mut source = std::error::Error::source(err);
                while let Some(cause) = source {
                    if let Some(io) = cause.downcast_ref::<io::Error>() {
                        return Failure::of_io(io);
                    }
                    source = cause.source();
                }
                // The upstream closed the connection before a whole answer.
                if err.is_incomplete_message() || err.is_closed() || err.is_canceled() {
                    Failure::Reset
                } else {
                    Failure::Other
                }
            }
        }
    }

    fn of_io(err: &io::Error) -> Failure {
        match err.kind() {
            io::ErrorKind::ConnectionRefused => Failure::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => Failure::Reset,
            io::ErrorKind::TimedOut => Failure::Timeout,
            _ => Failure::Other,
        }
    }
}

pub(super) struct MirrorCounters {
    sent: AtomicU64,
    ok: AtomicU64,
    http_4xx: AtomicU64,
    http_5xx: AtomicU64,
    failed: [AtomicU64; FAILURES.len()],
    dropped: AtomicU64,
    skipped_too_large: AtomicU64,
    /// Microseconds, 1 µs to 10 min, 3 significant digits.
    latency: Mutex<Histogram<u64>>,
}

impl MirrorCounters {
    pub(super) fn new() -> MirrorCounters {
        MirrorCounters {
            sent: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            http_4xx: AtomicU64::new(0),
            http_5xx: AtomicU64::new(0),
            failed: Default::default(),
            dropped: AtomicU64::new(0),
            skipped_too_large: AtomicU64::new(0),
            latency: Mutex::new(
                Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"),
            ),
        }
    }

    pub(super) fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn skipped_too_large(&self) {
        self.skipped_too_large.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn failed(&self, failure: Failure) {
        let index = FAILURES.iter().position(|f| *f == failure).unwrap_or(0);
        self.failed[index].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn answered(&self, status: StatusCode, took: Duration) {
        let class = match status.as_u16() {
            500.. => &self.http_5xx,
            400..=499 => &self.http_4xx,
            _ => &self.ok,
        };
        class.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        lock(&self.latency).saturating_record(micros.max(1));
    }

    pub(super) fn snapshot(&self, name: &str) -> MirrorStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (p50_ms, p99_ms) = {
            let latency = lock(&self.latency);
            let ms = |quantile| latency.value_at_quantile(quantile) as f64 / 1000.0;
            if latency.is_empty() {
                (0.0, 0.0)
            } else {
                (ms(0.5), ms(0.99))
            }
        };
        MirrorStats {
            name: name.to_owned(),
            sent: load(&self.sent),
            ok: load(&self.ok),
            http_4xx: load(&self.http_4xx),
            http_5xx: load(&self.http_5xx),
            failed_by_kind: FAILURES
                .iter()
                .zip(&self.failed)
                .filter(|(_, count)| load(count) > 0)
                .map(|(failure, count)| (failure.name().to_owned(), load(count)))
                .collect(),
            dropped: load(&self.dropped),
            skipped_too_large: load(&self.skipped_too_large),
            p50_ms,
            p99_ms,
        }
    }
}

//! Busy polling after traffic: a worker keeps its sockets polled for a moment after each request
//! instead of going to sleep at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How long a worker keeps polling its sockets after its last request before it sleeps. An
/// answer from a replica or a keep-alive client's next request usually comes sooner, and is then
/// seen without a wake-up; with no traffic, no CPU is spent.
pub const BUSY_POLL: Duration = Duration::from_micros(200);

/// The worker's busy polling: a task that keeps yielding (so the runtime polls the sockets
/// without sleeping) until no request came for [`BUSY_POLL`], then sleeps until the next one.
#[derive(Default)]
pub(super) struct BusyPoll {
    /// Requests seen by this worker. Only its own thread writes it: a plain load and store.
    requests: AtomicU64,
    idle: AtomicBool,
    wake: Notify,
}

impl BusyPoll {
    pub(super) fn request_seen(&self) {
        let seen = self.requests.load(Ordering::Relaxed);
        self.requests.store(seen.wrapping_add(1), Ordering::Relaxed);
        if self.idle.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    pub(super) async fn run(&self) {
        loop {
            self.idle.store(true, Ordering::Relaxed);
            // A request that came before this wait left a permit: no wake-up is lost.
            self.wake.notified().await;
            self.idle.store(false, Ordering::Relaxed);
            let mut seen = self.requests.load(Ordering::Relaxed);
            let mut last = Instant::now();
            while last.elapsed() < BUSY_POLL {
                // Yielding lets the runtime poll the sockets (without blocking) and run what
                // became ready, then come back here.
                tokio::task::yield_now().await;
                let now_seen = self.requests.load(Ordering::Relaxed);
                if now_seen != seen {
                    seen = now_seen;
                    last = Instant::now();
                }
            }
        }
    }
}

//! Each worker's idle keep-alive connections, shared by its slots.
//!
//! A request takes the most recently used idle connection that is still usable, and opens one
//! only when none is; its answer's end puts the connection back on top. So the probe holds about
//! as many connections as it had requests in flight at once, not one per slot, and at a steady
//! rate the same few connections carry the traffic (as a browser's or a service client's pool
//! does) while the ones below the top go unused and are closed after [`IDLE_TIMEOUT`].
//!
//! Only the worker's thread takes the lock: never contended.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::client::Connection;

/// An idle connection unused for this long is closed (when the next one comes back).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(crate) struct Pool {
    /// The most recently used at the back.
    idle: Mutex<VecDeque<Idle>>,
}

struct Idle {
    connection: Connection,
    since: Instant,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        self.idle.lock().expect("connection pool poisoned")
    }

    /// The most recently used idle connection that can carry a request now (one the server
    /// closed meanwhile, or sent bytes on, is dropped).
    pub(crate) fn take(&self) -> Option<Connection> {
        loop {
            let mut idle = self.lock().pop_back()?;
            if idle.connection.still_idle() {
                return Some(idle.connection);
            }
        }
    }

    /// Puts back a connection whose answer was read whole; closes those unused for
    /// [`IDLE_TIMEOUT`].
    pub(crate) fn put(&self, connection: Connection) {
        let now = Instant::now();
        let mut idle = self.lock();
        while idle
            .front()
            .is_some_and(|oldest| now.duration_since(oldest.since) >= IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        idle.push_back(Idle {
            connection,
            since: now,
        });
    }

    /// Closes the idle connection unused for longest (to make room at the open-file limit).
    pub(crate) fn close_oldest(&self) -> bool {
        self.lock().pop_front().is_some()
    }

    /// Closes every idle connection.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The top connection, not looked at.
    #[cfg(test)]
    pub(crate) fn pop_unchecked(&self) -> Option<Connection> {
        self.lock().pop_back().map(|idle| idle.connection)
    }
}

/// The connections open at once, across workers.
#[derive(Default)]
pub(crate) struct OpenConnections {
    open: AtomicUsize,
    max: AtomicUsize,
}

impl OpenConnections {
    pub(crate) fn opened(&self) {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.max.fetch_max(open, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// The most open at once so far.
    pub(crate) fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }
}

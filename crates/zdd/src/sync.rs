//! zdd's one policy for poisoned locks: keep going.
//!
//! Every mutex in zdd guards plain data (counters, lists, a status snapshot) that a panicking
//! holder cannot leave half-updated in a way that matters more than stopping the rollout would:
//! a rollout that stopped here would leave replicas and routes behind.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, also after another thread panicked while holding it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

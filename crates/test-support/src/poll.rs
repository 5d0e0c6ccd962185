//! Waiting until a condition holds, with a bound: a test never hangs, and its failure names what
//! never happened.

use std::time::{Duration, Instant};

/// How long between two looks at the condition.
const EVERY: Duration = Duration::from_millis(20);

/// Polls `condition` until it holds; panics, naming `what`, after `timeout`.
pub async fn eventually(what: &str, timeout: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(EVERY).await;
    }
}

/// Blocking: retries `attempt` until it gives a value, and returns it; panics, naming `what`, after
/// `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut attempt: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(EVERY);
    }
}

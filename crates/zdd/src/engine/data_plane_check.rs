//! Checks on the data plane itself, not on what the control plane believes.
//!
//! - [`verify_drained`]: before a version is scaled to zero, the probe's live traffic must keep
//!   flowing and none of it may reach that version for a whole window. Argo Rollouts and Flagger
//!   wait a fixed delay here instead, and drop requests when the router is slower than the delay.
//! - [`wait_answers`]: a route answers from the expected version (before traffic is sent to it).

use std::time::{Duration, Instant};

use super::traffic::TrafficView;
use crate::http_get;
use crate::spec::DataPlaneCheck;

/// How often the probe's counters are read.
const TICK: Duration = Duration::from_millis(100);

/// What the check saw when it passed.
#[derive(Clone, Debug, PartialEq)]
pub struct Drained {
    /// Successful requests in the clean window, none of them answered by the drained version.
    pub requests: u64,
    /// From the start of the check to its success.
    pub waited: Duration,
}

/// Waits until, for `check.window` without interruption, at least `check.min_requests`
/// requests succeeded and none was answered by `version`.
pub async fn verify_drained(
    traffic: &dyn TrafficView,
    version: &str,
    check: &DataPlaneCheck,
) -> Result<Drained, String> {
    let start = Instant::now();
    let mut clean_since = start;
    loop {
        tokio::time::sleep(TICK).await;
        let window = traffic.window(clean_since);
        let reached = window.by_version.get(version).copied().unwrap_or(0);
        if reached > 0 {
            // Still routed there: the window starts again after this answer.
            clean_since = Instant::now();
        } else if clean_since.elapsed() >= check.window && window.ok >= check.min_requests {
            return Ok(Drained {
                requests: window.ok,
                waited: start.elapsed(),
            });
        }
        if start.elapsed() >= check.timeout {
            let now = traffic.window(clean_since);
            return Err(format!(
                "traffic did not leave {version} within {}: in the last window {} ok, {} failed, \
                 {} answered by {version} (needs {} ok and none from {version} for {})",
                humantime::format_duration(check.timeout),
                now.ok,
                now.failed,
                now.by_version.get(version).copied().unwrap_or(0),
                check.min_requests,
                humantime::format_duration(check.window),
            ));
        }
    }
}

/// The version that answered, as the router (`X-Zdd-Version`) or the app (`X-Version`) says.
fn answering_version(answer: &http_get::Answer) -> Option<&str> {
    answer
        .header("x-zdd-version")
        .or_else(|| answer.header("x-version"))
}

/// Waits until `consecutive` requests in a row to `url` are answered by `version`.
pub async fn wait_answers(
    url: &str,
    version: &str,
    consecutive: u32,
    timeout: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    let mut streak = 0;
    loop {
        let last = match http_get::get(url, "zdd", Duration::from_secs(2)).await {
            Ok(answer) if !answer.is_success() => format!("HTTP {}", answer.status),
            Ok(answer) if answering_version(&answer) == Some(version) => {
                streak += 1;
                if streak >= consecutive {
                    return Ok(());
                }
                continue;
            }
            Ok(answer) => format!(
                "answered by {}",
                answering_version(&answer).unwrap_or("an unknown version")
            ),
            Err(err) => err.to_string(),
        };
        streak = 0;
        if start.elapsed() >= timeout {
            return Err(format!(
                "{url} did not answer from {version} within {} (last: {last})",
                humantime::format_duration(timeout)
            ));
        }
        tokio::time::sleep(TICK).await;
    }
}

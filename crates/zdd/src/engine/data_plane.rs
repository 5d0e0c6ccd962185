//! Checks on the data plane itself, not on what the control plane believes.
//!
//! - [`verify_drained`]: before a version is scaled to zero, the probe's live traffic must keep
//!   flowing and none of it may reach that version for a whole window. Argo Rollouts and Flagger
//!   wait a fixed delay here instead, and drop requests when the router is slower than the delay.
//! - [`wait_answers`]: a route answers from the expected version (before traffic is sent to it).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::TrafficView;
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

/// A small HTTP client for checks that must see one answer at a time.
#[derive(Clone)]
pub struct HttpChecker {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for HttpChecker {
    fn default() -> Self {
        Self::new()
    }
}

/// The version that answered, as the router (`X-Zdd-Version`) or the app (`X-Version`) says.
fn answering_version(headers: &http::HeaderMap) -> Option<String> {
    ["x-zdd-version", "x-version"]
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

impl HttpChecker {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        HttpChecker {
            client: Client::builder(TokioExecutor::new())
                // A fresh connection per check: a pooled one could reach an endpoint the router
                // no longer picks.
                .pool_max_idle_per_host(0)
                .build(connector),
        }
    }

    /// One GET; `Ok(version)` for a 2xx/3xx answer.
    pub async fn get_version(&self, url: &str) -> Result<Option<String>, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
        let request = tokio::time::timeout(Duration::from_secs(2), self.client.get(uri));
        let response = request
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let version = answering_version(response.headers());
        // Read the body so the answer is complete.
        let _ = response.into_body().collect().await;
        if status.is_success() || status.is_redirection() {
            Ok(version)
        } else {
            Err(format!("HTTP {status}"))
        }
    }

    /// Waits until `consecutive` requests in a row to `url` are answered by `version`.
    pub async fn wait_answers(
        &self,
        url: &str,
        version: &str,
        consecutive: u32,
        timeout: Duration,
    ) -> Result<(), String> {
        let start = Instant::now();
        let mut streak = 0;
        loop {
            let last = match self.get_version(url).await {
                Ok(Some(answered)) if answered == version => {
                    streak += 1;
                    if streak >= consecutive {
                        return Ok(());
                    }
                    continue;
                }
                Ok(other) => {
                    format!(
                        "answered by {}",
                        other.as_deref().unwrap_or("an unknown version")
                    )
                }
                Err(err) => err,
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
}

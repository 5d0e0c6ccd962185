//! Watching the app while the platform runs it: probes on fresh connections over time, a pooled
//! client's keep-alive connection, the slow request, and waits on the platform's events.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::measurements::{KeepAlive, KeepAliveEnd, Observation, Reply, SlowOutcome, SlowRequest};
use super::raw_http::{Connection, get_whole};
use crate::events::{EventLog, Record};
use crate::http_get;

/// How often a watched path is requested: the resolution of every "N ms after SIGTERM".
pub const POLL_EVERY: Duration = Duration::from_millis(25);
/// Each watched request's own limit.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);
/// A pooled client's pace on its keep-alive connection.
const KEEP_ALIVE_EVERY: Duration = Duration::from_millis(100);
/// A keep-alive request with no answer by then counts as broken under the request.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A task that is aborted when its handle is dropped (an interrupted check leaves none behind).
pub struct Task<T>(JoinHandle<T>);

impl<T: Send + 'static> Task<T> {
    pub fn spawn(future: impl Future<Output = T> + Send + 'static) -> Self {
        Task(tokio::spawn(future))
    }

    /// Its result; `None` if it panicked.
    pub async fn join(mut self) -> Option<T> {
        (&mut self.0).await.ok()
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Seconds on the run's clock.
pub fn now_s(origin: Instant) -> f64 {
    origin.elapsed().as_secs_f64()
}

/// `GET path` on a fresh connection, as the kubelet probes.
pub async fn probe_once(addr: SocketAddr, path: &str, origin: Instant) -> Observation {
    let at_s = now_s(origin);
    let url = format!("http://{addr}{path}");
    let reply = match http_get::get(&url, "zdd-check", POLL_TIMEOUT).await {
        Ok(answer) => Reply::Status {
            status: answer.status,
        },
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => Reply::Refused,
        Err(err) => Reply::Failed {
            error: err.to_string(),
        },
    };
    Observation { at_s, reply }
}

/// Requests `path` every [`POLL_EVERY`] until stopped.
pub struct Poller {
    task: Task<Vec<Observation>>,
    stop: CancellationToken,
}

impl Poller {
    pub fn start(addr: SocketAddr, path: String, origin: Instant) -> Poller {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = Task::spawn(async move {
            let mut seen = Vec::new();
            let mut ticker = tokio::time::interval(POLL_EVERY);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stopped.cancelled() => return seen,
                    _ = ticker.tick() => seen.push(probe_once(addr, &path, origin).await),
                }
            }
        });
        Poller { task, stop }
    }

    pub async fn finish(self) -> Vec<Observation> {
        self.stop.cancel();
        self.task.join().await.unwrap_or_default()
    }
}

/// A client that keeps one connection alive and sends a request on it every
/// [`KEEP_ALIVE_EVERY`], as an ingress's connection pool does, until the app ends the connection
/// or it is stopped.
pub struct KeepAliveClient {
    task: Task<KeepAlive>,
    stop: CancellationToken,
}

impl KeepAliveClient {
    /// Opens the connection and has its first answer before returning.
    pub async fn start(addr: SocketAddr, path: String, origin: Instant) -> KeepAliveClient {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let opened = match Connection::open(addr).await {
            Ok(mut connection) => match connection.request(&path).await {
                Ok(answer) if answer.closes => Err(KeepAliveEnd::NotKeptAlive),
                Ok(_) => Ok(connection),
                Err(err) => Err(KeepAliveEnd::CouldNotOpen {
                    error: err.to_string(),
                }),
            },
            Err(err) => Err(KeepAliveEnd::CouldNotOpen {
                error: err.to_string(),
            }),
        };
        let task = Task::spawn(async move {
            match opened {
                Ok(connection) => keep_using(connection, &path, origin, stopped).await,
                Err(end) => KeepAlive { answers: 0, end },
            }
        });
        KeepAliveClient { task, stop }
    }

    pub async fn finish(self) -> KeepAlive {
        self.stop.cancel();
        self.task.join().await.unwrap_or(KeepAlive {
            answers: 0,
            end: KeepAliveEnd::StillOpen,
        })
    }
}

async fn keep_using(
    mut connection: Connection,
    path: &str,
    origin: Instant,
    stop: CancellationToken,
) -> KeepAlive {
    let mut answers = 1;
    loop {
        tokio::select! {
            () = stop.cancelled() => return KeepAlive { answers, end: KeepAliveEnd::StillOpen },
            () = tokio::time::sleep(KEEP_ALIVE_EVERY) => {}
        }
        if connection.closed_by_peer() {
            let at_s = now_s(origin);
            return KeepAlive {
                answers,
                end: KeepAliveEnd::ClosedIdle { at_s },
            };
        }
        let at_s = now_s(origin);
        let broken = |error: String| KeepAlive {
            answers,
            end: KeepAliveEnd::BrokenUnderRequest { at_s, error },
        };
        match tokio::time::timeout(KEEP_ALIVE_TIMEOUT, connection.request(path)).await {
            Ok(Ok(answer)) => {
                answers += 1;
                if answer.closes {
                    return KeepAlive {
                        answers,
                        end: KeepAliveEnd::ToldToClose { at_s },
                    };
                }
            }
            Ok(Err(err)) => return broken(err.to_string()),
            Err(_) => return broken(format!("no answer within {KEEP_ALIVE_TIMEOUT:?}")),
        }
    }
}

/// Sends the slow request now; its outcome once it has ended (at most `limit`).
pub fn send_slow_request(
    addr: SocketAddr,
    path: String,
    origin: Instant,
    limit: Duration,
) -> Task<SlowRequest> {
    let sent_s = now_s(origin);
    Task::spawn(async move {
        let outcome = match tokio::time::timeout(limit, get_whole(addr, &path)).await {
            Ok(Ok(answer)) => SlowOutcome::Answered {
                status: answer.status,
            },
            Ok(Err(err)) => SlowOutcome::Cut {
                error: err.to_string(),
            },
            Err(_) => SlowOutcome::TimedOut,
        };
        SlowRequest {
            path,
            sent_s,
            ended_s: now_s(origin),
            outcome,
        }
    })
}

/// Waits until `find` picks a record out of the events, at most `timeout`.
pub async fn wait_for_event<T>(
    events: &EventLog,
    timeout: Duration,
    find: impl Fn(&Record) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = events.snapshot().iter().find_map(&find) {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

//! Waiting on the cluster by watching it: a `kube::runtime::watcher` stream feeds a `reflector`
//! store, the local view of the matching objects, and a check runs on it after every change. A
//! broken watch resumes from the last resourceVersion (the watcher does it; the backoff keeps a
//! flapping API server from being hammered); only permission errors end the wait early.

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use futures::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

use super::apply::Cluster;
use crate::events::{Event, EventLog};
use crate::platform::{PlatformError, Result};

/// What a check concludes from the current objects.
pub enum Check<T> {
    Done(T),
    /// Stop waiting: it will not happen (for example the progress deadline passed).
    Fail(String),
    /// Not yet; the text describes the current state, for the timeout message.
    Pending(String),
}

pub enum WaitEnd<T> {
    Done(T),
    Failed(String),
    /// The deadline passed; the last state seen.
    TimedOut(String),
    /// The watch cannot work (permission denied, kind not served).
    Broken(kube::Error),
}

impl<T> WaitEnd<T> {
    /// The platform's result: a timeout waiting for `goal` when the check failed or the deadline
    /// passed, the error of the watch of `resource` when it broke.
    pub fn into_result(
        self,
        cluster: &Cluster,
        goal: &str,
        resource: &str,
        waited: Duration,
    ) -> Result<T> {
        match self {
            WaitEnd::Done(value) => Ok(value),
            WaitEnd::Failed(state) | WaitEnd::TimedOut(state) => Err(PlatformError::Timeout {
                what: format!("{goal} {} ({state})", cluster.target.location()),
                waited,
            }),
            WaitEnd::Broken(e) => Err(cluster.fail("watch", resource, None, e)),
        }
    }
}

fn permanent(err: &watcher::Error) -> Option<kube::Error> {
    let source = match err {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => e,
        _ => return None,
    };
    match source {
        kube::Error::Api(status) if matches!(status.code, 401 | 403 | 404) => {
            Some(kube::Error::Api(status.clone()))
        }
        _ => None,
    }
}

/// Watches `api` (filtered by `config`) into a reflector store until `check` on it is done or
/// fails, or `deadline` passes.
pub async fn watch_until<K, T>(
    api: Api<K>,
    config: watcher::Config,
    deadline: tokio::time::Instant,
    what: &str,
    events: &EventLog,
    mut check: impl FnMut(&Store<K>) -> Check<T>,
) -> WaitEnd<T>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (objects, writer) = reflector::store();
    let stream = watcher(api, config).default_backoff().reflect(writer);
    let mut stream = std::pin::pin!(stream);
    let mut last_state = String::from("nothing observed yet");
    loop {
        let next = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return WaitEnd::TimedOut(last_state),
            Ok(None) => return WaitEnd::TimedOut(format!("{last_state} (watch ended)")),
            Ok(Some(next)) => next,
        };
        match next {
            Err(err) => {
                if let Some(fatal) = permanent(&err) {
                    return WaitEnd::Broken(fatal);
                }
                tracing::warn!("watch of {what} broke ({err}); resuming");
                events.emit(Event::WatchResumed {
                    what: what.to_owned(),
                });
                continue;
            }
            // A relist in progress: the store keeps the previous view until it is done.
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
            Ok(_) => {}
        }
        match check(&objects) {
            Check::Done(value) => return WaitEnd::Done(value),
            Check::Fail(reason) => return WaitEnd::Failed(reason),
            Check::Pending(state) => last_state = state,
        }
    }
}

//! A stand-in for kube-apiserver on loopback, for testing zdd's Kubernetes platform through
//! kube-rs over real HTTP.
//!
//! It speaks the API for the verbs and kinds zdd uses (get, list, watch, create, patch with
//! server-side apply or merge, delete; Services, Pods, Deployments, EndpointSlices, Traefik
//! `TraefikService`/`IngressRoute`, Gateway API `HTTPRoute`), runs a simulated deployment
//! controller and EndpointSlice controller, records every request, and injects faults (a version
//! that never becomes ready, a 403 on one verb and resource, a watch that breaks once).
//!
//! What it is not: no authentication, no admission or schema validation, no field ownership
//! beyond a single manager (see [`store::apply_patch`]), no 410 Gone (the whole history is kept).

mod controller;
mod data_plane;
mod header_routes;
mod server;
pub mod store;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use crate::store::{Kind, ObjectKey, Store};

/// Timing of the simulated control plane.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// A new pod passes readiness this long after it is created.
    pub pod_ready_after: Duration,
    /// A terminating pod (preStop, drain) disappears this long after its deletion started.
    pub pod_terminate_after: Duration,
    /// How long a pod that became ready waits before its endpoint is published as ready (the
    /// endpoint controller's lag).
    pub endpoints_lag: Duration,
    /// How long the data plane (kube-proxy, the ingress) takes to see a change of endpoints or
    /// weights.
    pub data_plane_lag: Duration,
    /// How often the controllers reconcile.
    pub tick: Duration,
    /// How often a watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// Compresses time for tests: a Deployment's `progressDeadlineSeconds` counts as at most this.
    pub progress_deadline_cap: Option<Duration>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            pod_ready_after: Duration::from_millis(300),
            pod_terminate_after: Duration::from_millis(300),
            endpoints_lag: Duration::ZERO,
            data_plane_lag: Duration::ZERO,
            tick: Duration::from_millis(20),
            bookmark_interval: Duration::from_secs(1),
            progress_deadline_cap: None,
        }
    }
}

/// Faults the next requests meet. Change them any time through [`FakeApiServer::faults`].
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Pods whose `version` label is in here never pass readiness.
    pub never_ready: BTreeSet<String>,
    /// The data plane answers 500 for pods whose `version` label is in here (a bad release).
    pub failing_versions: BTreeSet<String>,
    /// `(verb, resource)` pairs answered with 403 Forbidden, e.g. `("patch", "services")`. Verbs
    /// as RBAC names them: get, list, watch, create, patch, update, delete.
    pub forbidden: BTreeSet<(String, String)>,
    /// Resources (plural) answered with a plain `404 page not found`, as for a CRD that is not
    /// installed.
    pub unserved: BTreeSet<String>,
    /// Resources (plural) whose next watch is cut, mid-stream, after its first event.
    pub break_watch_once: BTreeSet<String>,
    /// How many watches were cut so far.
    pub watches_broken: u32,
}

/// One request as the server received it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    /// Position among every API request and data-plane answer, so tests can order them.
    pub seq: u64,
    /// When it arrived, since the server started (for tests of delays).
    pub at: Duration,
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub content_type: Option<String>,
    pub body: String,
}

/// One request the data plane answered (or could not).
#[derive(Clone, Debug, PartialEq)]
pub struct DataPlaneAnswer {
    /// Position among every API request and data-plane answer.
    pub seq: u64,
    /// When it was answered, since the server started.
    pub at: Duration,
    /// The Service or route the request was sent to.
    pub route: String,
    pub status: u16,
    /// The `version` label of the pod that answered.
    pub version: Option<String>,
}

impl RecordedRequest {
    /// The RBAC verb this request needs.
    pub fn verb(&self) -> &'static str {
        server::verb_of(&self.method, &self.path, &self.query)
    }

    /// The body parsed as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| server::percent_decode(v))
        })
    }
}

pub(crate) struct Shared {
    pub(crate) config: FakeConfig,
    /// The time origin of [`RecordedRequest::at`] and [`DataPlaneAnswer::at`].
    pub(crate) started: std::time::Instant,
    pub(crate) store: Mutex<Store>,
    /// The store's latest resourceVersion; watches wait on it.
    pub(crate) changed: watch::Sender<u64>,
    pub(crate) requests: Mutex<Vec<RecordedRequest>>,
    pub(crate) answers: Mutex<Vec<DataPlaneAnswer>>,
    pub(crate) seq: std::sync::atomic::AtomicU64,
    /// Recent data-plane views, oldest first (only with a `data_plane_lag`).
    pub(crate) views:
        Mutex<std::collections::VecDeque<(std::time::Instant, Arc<data_plane::DataView>)>>,
    pub(crate) faults: Mutex<Faults>,
}

impl Shared {
    /// The newest data-plane view taken at or before `at`; the oldest one while none is that old
    /// (a data plane that started with the server has not caught up yet either).
    pub(crate) fn view_at(&self, at: std::time::Instant) -> Option<Arc<data_plane::DataView>> {
        let views = self.views.lock().expect("views poisoned");
        views
            .iter()
            .rev()
            .find(|(taken, _)| *taken <= at)
            .or(views.front())
            .map(|(_, view)| view.clone())
    }

    /// Records the current view for the lagging data plane and forgets what it can no longer need.
    pub(crate) fn record_view(&self, store: &Store, now: std::time::Instant) {
        let lag = self.config.data_plane_lag;
        if lag.is_zero() {
            return;
        }
        let mut views = self.views.lock().expect("views poisoned");
        views.push_back((now, Arc::new(data_plane::DataView::of(store))));
        // Keep one view older than the lag: it is the one in use.
        while views.len() > 1 && views[1].0 + lag <= now {
            views.pop_front();
        }
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }

    /// Writes through the store and wakes the watches.
    pub(crate) fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let (result, rv) = {
            let mut store = self.store.lock().expect("store poisoned");
            let result = f(&mut store);
            (result, store.resource_version())
        };
        self.changed.send_if_modified(|current| {
            let moved = *current != rv;
            *current = rv;
            moved
        });
        result
    }
}

/// A running fake API server. Dropping it stops it.
pub struct FakeApiServer {
    addr: SocketAddr,
    data_plane_addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl FakeApiServer {
    /// Starts on `127.0.0.1:0` (a port the OS picks).
    pub async fn start(config: FakeConfig) -> std::io::Result<FakeApiServer> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(config: FakeConfig, addr: SocketAddr) -> std::io::Result<FakeApiServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            started: std::time::Instant::now(),
            store: Mutex::new(Store::default()),
            changed: watch::Sender::new(0),
            requests: Mutex::new(Vec::new()),
            answers: Mutex::new(Vec::new()),
            seq: Default::default(),
            views: Mutex::new(Default::default()),
            faults: Mutex::new(Faults::default()),
        });
        let app = server::router(shared.clone());
        let serve = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!("fake apiserver stopped: {err}");
            }
        });
        let control_plane = tokio::spawn(controller::run(shared.clone()));
        let data_listener = tokio::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0)).await?;
        let data_plane_addr = data_listener.local_addr()?;
        let data_app = data_plane::router(shared.clone(), Default::default());
        let data_plane = tokio::spawn(async move {
            if let Err(err) = axum::serve(data_listener, data_app).await {
                tracing::error!("fake data plane stopped: {err}");
            }
        });
        Ok(FakeApiServer {
            addr,
            data_plane_addr,
            shared,
            tasks: vec![serve, control_plane, data_plane],
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where traffic to Service (or TraefikService / HTTPRoute) `name` goes: the simulated
    /// kube-proxy and ingress, which answer for the pods they pick.
    pub fn data_plane_url(&self, namespace: &str, name: &str) -> String {
        format!("http://{}/{namespace}/{name}", self.data_plane_addr)
    }

    /// Writes a kubeconfig with one context, `fake`, pointing at this server, and returns its path.
    /// Point `KUBECONFIG` at it.
    pub fn write_kubeconfig(&self, dir: &Path, namespace: &str) -> std::io::Result<PathBuf> {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, self.kubeconfig(namespace))?;
        Ok(path)
    }

    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\nusers:\n- name: fake\n  user:\n    token: fake-token\n",
            url = self.url()
        )
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .expect("requests poisoned")
            .clone()
    }

    /// Every data-plane answer so far, oldest first.
    pub fn data_plane_answers(&self) -> Vec<DataPlaneAnswer> {
        self.shared
            .answers
            .lock()
            .expect("answers poisoned")
            .clone()
    }

    /// Changes the faults for the next requests.
    pub fn faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.shared.faults.lock().expect("faults poisoned"));
    }

    pub fn watches_broken(&self) -> u32 {
        self.shared
            .faults
            .lock()
            .expect("faults poisoned")
            .watches_broken
    }

    /// The stored object, as a GET would return it.
    pub fn object(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        let key = ObjectKey {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        };
        self.shared
            .store
            .lock()
            .expect("store poisoned")
            .get(&key)
            .cloned()
    }

    /// Every stored object of `kind` in `namespace`.
    pub fn objects(&self, kind: Kind, namespace: &str) -> Vec<Value> {
        self.shared
            .store
            .lock()
            .expect("store poisoned")
            .list(kind, Some(namespace))
    }

    /// Creates or replaces an object directly (as `kubectl apply` of the manifests would), for
    /// tests that start from an existing state.
    pub fn put(&self, kind: Kind, namespace: &str, object: Value) -> Value {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = ObjectKey {
            kind,
            namespace: namespace.into(),
            name,
        };
        self.shared.with_store(|store| store.put(key, object))
    }
}

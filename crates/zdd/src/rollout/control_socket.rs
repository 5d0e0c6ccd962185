//! The control socket: `zdd promote`, `zdd abort`, `zdd status`, `zdd drain` and `zdd uncordon`
//! reach a running rollout through a Unix socket in its run directory (`control.sock`). The
//! protocol is one JSON line each way: `{"command":"promote"|"abort"|"status"}` (or
//! `{"command":{"drain":{"node":"node-1","evictionTimeoutS":60}}}`) then a [`ControlReply`],
//! sent once the command is done (a drain, once its pods are gone).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::engine::control::{Control, Interrupt, NodeAction, RolloutStatus};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ControlCommand {
    Promote,
    Abort,
    Status,
    #[serde(rename_all = "camelCase")]
    Drain {
        node: String,
        eviction_timeout_s: f64,
    },
    Uncordon {
        node: String,
    },
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
                ControlCommand::Drain {
                    node,
                    eviction_timeout_s,
                } => {
                    let eviction_timeout = Duration::try_from_secs_f64(eviction_timeout_s)
                        .unwrap_or(Duration::from_secs(60));
                    let drained = control
                        .node_request(&node, NodeAction::Drain { eviction_timeout })
                        .await;
                    match drained {
                        Ok(pods) if pods.is_empty() => {
                            (true, format!("node/{node} drained (no pod to evict)"))
                        }
                        Ok(pods) => (
                            true,
                            format!("node/{node} drained (evicted {})", pods.join(", ")),
                        ),
                        Err(why) => (false, why),
                    }
                }
                ControlCommand::Uncordon { node } => {
                    match control.node_request(&node, NodeAction::Uncordon).await {
                        Ok(_) => (true, format!("node/{node} uncordoned")),
                        Err(why) => (false, why),
                    }
                }
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

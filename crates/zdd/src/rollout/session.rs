//! What a command sets up around a run: the spec's own program, the run directory with its events
//! file and control socket, and Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use super::control_socket::{self, ControlServer};
use crate::engine::control::{Control, Interrupt};
use crate::events::EventLog;
use crate::platform::RouterKind;
use crate::platform::local::LocalConfig;
use crate::spec::Spec;

/// A run directory in use: its events file and its control socket (closed on drop).
pub struct Session {
    pub run_dir: PathBuf,
    pub events: EventLog,
    pub control: Control,
    _server: ControlServer,
}

impl Session {
    /// Creates `run_dir` (and points `<parent>/current` at it), starts the events file
    /// (`events.jsonl`, time zero now) and serves the control socket.
    pub fn open(run_dir: &Path) -> anyhow::Result<Session> {
        prepare_run_dir(run_dir)?;
        let events_file = std::fs::File::create(run_dir.join("events.jsonl"))
            .with_context(|| format!("cannot write events in {}", run_dir.display()))?;
        let events = EventLog::with_sink(Instant::now(), Box::new(events_file));
        let control = Control::new();
        let server = control_socket::serve(control.clone(), run_dir)
            .with_context(|| format!("cannot open the control socket in {}", run_dir.display()))?;
        Ok(Session {
            run_dir: run_dir.to_path_buf(),
            events,
            control,
            _server: server,
        })
    }
}

/// The local platform as `spec` describes it: its propagation delay, its nodes and the app's
/// disruption budget, with `router` as the data plane.
pub fn local_config(spec: &Spec, run_dir: &Path, router: RouterKind) -> LocalConfig {
    let mut config = LocalConfig::new(run_dir);
    config.propagation_delay = spec.local.propagation_delay;
    config.nodes = spec.local.nodes;
    config.disruption_budget = spec.app.disruption_budget;
    config.router = router;
    config
}

/// `zdd` as a spec's program means this very binary, so specs run on a machine without `zdd` on
/// PATH (and `zdd demo` needs no second binary).
pub fn resolve_self_command(spec: &mut Spec) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the zdd binary")?;
    let exe = exe.to_string_lossy().to_string();
    let commands = std::iter::once(&mut spec.app.command)
        .chain(spec.from.command.iter_mut())
        .chain(spec.to.iter_mut().flat_map(|to| to.command.iter_mut()));
    for command in commands {
        if command.first().is_some_and(|program| program == "zdd") {
            command[0] = exe.clone();
        }
    }
    Ok(())
}

/// Creates the run directory and points `<parent>/current` at it.
pub fn prepare_run_dir(run_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("cannot create the run directory {}", run_dir.display()))?;
    if let (Some(parent), Some(name)) = (run_dir.parent(), run_dir.file_name()) {
        let link = parent.join("current");
        if name != "current" {
            let _ = std::fs::remove_file(&link);
            // Best effort: `zdd promote --run-dir` works without it.
            let _ = std::os::unix::fs::symlink(name, &link);
        }
    }
    Ok(())
}

/// Ctrl-C and SIGTERM interrupt the rollout (no rollback; the platform is shut down). A second
/// signal exits at once; the replicas die with zdd (`PR_SET_PDEATHSIG`).
pub fn forward_signals(control: Control) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    on_signals("stopping the traffic and the replicas", move |name| {
        control.interrupt(Interrupt::Signal { name: name.into() });
    })
}

/// Ctrl-C and SIGTERM: the first says `stopping` and calls `on_first` with the signal's name, a
/// second exits at once (1); every process zdd started dies with it (`PR_SET_PDEATHSIG`).
pub fn on_signals(
    stopping: &'static str,
    on_first: impl FnOnce(&'static str) + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(tokio::spawn(async move {
        let mut next = async || {
            tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            }
        };
        let name = next().await;
        eprintln!("zdd: {name}: {stopping}");
        on_first(name);
        let name = next().await;
        eprintln!("zdd: second {name}, exiting now");
        std::process::exit(1);
    }))
}

//! What zdd's tests share beyond zdd-test-support: `zdd rollout` and the control commands on a
//! [`Run`] of the zdd binary, their JSON results, and replica templates for the local platform.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use zdd::model::{ProbeSpec, VersionTemplate};

/// A run of the real `zdd` binary (a [`zdd_test_support::run::Run`]).
pub struct Run(zdd_test_support::run::Run);

impl Deref for Run {
    type Target = zdd_test_support::run::Run;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Run {
    pub fn new(name: &str) -> Run {
        Run(zdd_test_support::run::Run::new(
            env!("CARGO_BIN_EXE_zdd"),
            name,
        ))
    }

    /// Writes `spec` to `NAME.yaml` and starts `zdd rollout` on it, with the run directory
    /// `runs/NAME` and the JSON result in `out.json`. Returns zdd and the run directory.
    pub fn start_rollout(&self, name: &str, spec: &str) -> (Child, PathBuf) {
        let file = format!("{name}.yaml");
        self.write(&file, spec);
        let run_dir = format!("runs/{name}");
        let child = self.spawn(&[
            "rollout",
            "-f",
            &file,
            "--run-dir",
            &run_dir,
            "--json",
            "out.json",
        ]);
        (child, self.path().join(run_dir))
    }

    /// `zdd COMMAND --run-dir RUN_DIR` (`status`, `promote`, `abort`) run to its end.
    pub fn control(&self, command: &str, run_dir: &Path) -> Output {
        self.command(&[command, "--run-dir"])
            .arg(run_dir)
            .output()
            .unwrap_or_else(|err| panic!("zdd {command}: {err}"))
    }

    pub fn status(&self, run_dir: &Path) -> Option<serde_json::Value> {
        let output = self
            .command(&["status", "-o", "json", "--run-dir"])
            .arg(run_dir)
            .output()
            .expect("zdd status");
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// Polls `zdd status` until `accept` holds (bounded; every 100 ms, as each look starts a zdd).
    pub fn wait_status(
        &self,
        run_dir: &Path,
        timeout: Duration,
        accept: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.status(run_dir)
                && accept(&status)
            {
                return status;
            }
            assert!(Instant::now() < deadline, "status never matched");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A small, quick spec for the reference service: `zdd serve` replicas, short probes.
pub fn serve_spec(name: &str, strategy: &str, replicas: u32, max_failed: &str) -> String {
    format!(
        r#"name: {name}
app:
  command: ["zdd", "serve"]
  replicas: {replicas}
  env: {{ DRAIN_DELAY: 500ms, SHUTDOWN_TIMEOUT: 5s }}
  readinessProbe: {{ path: /readyz, period: 200ms, failureThreshold: 1 }}
  preStop: {{ sleep: 1500ms }}
  terminationGracePeriod: 10s
versions:
  from: {{ name: v1, env: {{ APP_VERSION: v1 }} }}
  to: {{ name: v2, env: {{ APP_VERSION: v2 }} }}
strategy:
{strategy}
traffic: {{ rate: 100, path: / }}
budget: {{ maxFailed: {max_failed} }}
local: {{ propagationDelay: 500ms }}
"#
    )
}

/// A JSON result's events, in order.
pub fn events(result: &serde_json::Value) -> &[serde_json::Value] {
    result["events"].as_array().expect("events")
}

/// Where the first event of `kind` whose fields include `fields` is in a JSON result's events.
pub fn event_position(
    result: &serde_json::Value,
    kind: &str,
    fields: serde_json::Value,
) -> Option<usize> {
    events(result).iter().position(|e| {
        e["kind"] == kind
            && fields
                .as_object()
                .expect("fields as an object")
                .iter()
                .all(|(name, value)| e[name] == *value)
    })
}

pub fn probe(path: &str) -> ProbeSpec {
    ProbeSpec {
        path: path.to_owned(),
        period: Duration::from_millis(100),
        timeout: Duration::from_secs(1),
        failure_threshold: 2,
        success_threshold: 1,
        initial_delay: Duration::ZERO,
    }
}

/// A replica that is a real HTTP server and exits at once on SIGTERM: Python's http.server.
pub fn python_server(version: &str, dir: &Path) -> VersionTemplate {
    VersionTemplate {
        name: version.to_owned(),
        command: [
            "python3",
            "-m",
            "http.server",
            "{port}",
            "--bind",
            "127.0.0.1",
            "--directory",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.display().to_string()])
        .collect(),
        image: None,
        env: BTreeMap::from([("APP_VERSION".to_owned(), version.to_owned())]),
        readiness: probe("/"),
        liveness: None,
        pre_stop_sleep: Duration::ZERO,
        termination_grace_period: Duration::from_secs(3),
        min_ready: Duration::ZERO,
        scheduling: Default::default(),
    }
}

/// An HTTP server on 127.0.0.1:$PORT that ignores SIGTERM (only SIGKILL stops it) and answers
/// 200 `ok` to any GET on a kept-alive connection, after `ms` milliseconds when asked
/// (`/work?ms=5000`).
pub const SIGTERM_IGNORING_SERVER: &str = r#"
import os, signal, time, http.server
from urllib.parse import urlparse, parse_qs
signal.signal(signal.SIGTERM, signal.SIG_IGN)
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        time.sleep(int(parse_qs(urlparse(self.path).query).get("ms", ["0"])[0]) / 1000)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

/// A replica that ignores SIGTERM: only SIGKILL stops it.
pub fn sigterm_ignoring_server(version: &str) -> VersionTemplate {
    VersionTemplate {
        command: vec![
            "python3".into(),
            "-c".into(),
            SIGTERM_IGNORING_SERVER.into(),
        ],
        ..python_server(version, Path::new("."))
    }
}

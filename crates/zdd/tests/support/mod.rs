//! Helpers for the tests that run the real `zdd` binary: a unique marker in the environment that
//! every child inherits (so the process table tells which processes a test started), specs on
//! disk, `zdd rollout` and the control commands, and the JSON results.
// Each test file is its own crate and uses only some of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const MARKER_VAR: &str = "ZDD_TEST_MARKER";

/// A test's working directory and marker.
pub struct Run {
    pub dir: tempfile::TempDir,
    pub marker: String,
}

impl Run {
    pub fn new(name: &str) -> Run {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = format!("{name}-{}-{}", std::process::id(), dir.path().display());
        Run { dir, marker }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `zdd ARGS` in the test's directory, with the marker and the project's virtualenv on PATH
    /// (for Traefik).
    pub fn zdd(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_zdd"));
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin");
        let path = format!(
            "{}:{}",
            venv.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        command
            .args(args)
            .current_dir(self.path())
            .env(MARKER_VAR, &self.marker)
            .env("PATH", path);
        command
    }

    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.path().join(file);
        std::fs::write(&path, text).expect("write file");
        path
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.zdd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start zdd")
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
        self.zdd(&[command, "--run-dir"])
            .arg(run_dir)
            .output()
            .unwrap_or_else(|err| panic!("zdd {command}: {err}"))
    }

    /// Processes (other than this test) whose environment holds the marker.
    pub fn leftovers(&self) -> Vec<String> {
        processes_with(&format!("{MARKER_VAR}={}", self.marker))
    }

    /// Waits (bounded) until no process carries the marker; panics with the list otherwise.
    pub fn assert_nothing_left(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.leftovers();
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "processes left behind: {left:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn status(&self, run_dir: &Path) -> Option<serde_json::Value> {
        let output = self
            .zdd(&["status", "-o", "json", "--run-dir"])
            .arg(run_dir)
            .output()
            .expect("zdd status");
        if !output.status.success() {
            return None;
        }
        serde_json::from_slice(&output.stdout).ok()
    }

    /// Polls `zdd status` until `accept` holds (bounded).
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

    pub fn read_json(&self, file: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.path().join(file)).expect("read JSON");
        serde_json::from_str(&text).expect("valid JSON")
    }
}

/// Every process (but this one) whose environment contains `needle`, as "pid cmdline".
pub fn processes_with(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name == me || !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let hit = environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes());
        if hit {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            // A zombie has an empty cmdline and is gone once reaped.
            found.push(format!("{name} {cmdline}"));
        }
    }
    found
}

/// Waits for `child` with a deadline; kills it (and fails) when it overstays.
pub fn wait_with_deadline(mut child: Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "zdd did not finish within {timeout:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
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

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
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

//! A binary run by a test: a temporary working directory, and a unique marker in the environment
//! that every child inherits (so the process table tells which processes a test started).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::process::processes_with;

pub const MARKER_VAR: &str = "ZDD_TEST_MARKER";

/// A test's working directory and marker.
pub struct Run {
    dir: tempfile::TempDir,
    marker: String,
    binary: PathBuf,
}

impl Run {
    /// A run of `binary` (`env!("CARGO_BIN_EXE_<name>")`) named `name`.
    pub fn new(binary: impl Into<PathBuf>, name: &str) -> Run {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = format!("{name}-{}-{}", std::process::id(), dir.path().display());
        Run {
            dir,
            marker,
            binary: binary.into(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The binary with `args` in the test's directory, with the marker and the workspace's
    /// virtualenv on PATH (for Traefik).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
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
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("start {}: {err}", self.binary.display()))
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

    pub fn read_json(&self, file: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.path().join(file)).expect("read JSON");
        serde_json::from_str(&text).expect("valid JSON")
    }
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
                "the process did not finish within {timeout:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

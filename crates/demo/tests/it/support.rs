//! Runs the real `zdd-demo` binary on a loopback port the OS picks.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use zdd_test_support::http::Answer;
use zdd_test_support::http::blocking::get;
use zdd_test_support::poll::wait_for;

/// Upper bound for anything a test waits for; generous for a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// One running `zdd-demo`.
pub struct Demo {
    child: Child,
    pub address: SocketAddr,
    pub spawned_at: Instant,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Demo {
    /// Starts the binary with `env` (plus `PORT=0`, `BIND=127.0.0.1`, JSON logs) and waits for
    /// its "listening" log line to learn the port.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let spawned_at = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_zdd-demo"))
            .env_clear()
            .env("PORT", "0")
            .env("BIND", "127.0.0.1")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn zdd-demo");
        let stderr = child.stderr.take().expect("piped stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let collected = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = listening_address(&line) {
                    let _ = address_tx.send(address);
                }
                collected.lock().unwrap().push(line);
            }
        });
        let address = match address_rx.recv_timeout(PATIENCE) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "zdd-demo did not log its address; logs: {:?}",
                    logs.lock().unwrap()
                );
            }
        };
        Self {
            child,
            address,
            spawned_at,
            logs,
        }
    }

    /// Starts it and waits until `/readyz` answers 200.
    pub fn start_ready(env: &[(&str, &str)]) -> Self {
        let demo = Self::start(env);
        demo.wait_for_status("/readyz", 200);
        demo
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("send signal");
    }

    pub fn terminate(&self) {
        self.signal(Signal::SIGTERM);
    }

    /// Polls `path` on fresh connections until it answers `status`.
    pub fn wait_for_status(&self, path: &str, status: u16) -> Answer {
        wait_for(&format!("{path} answers {status}"), PATIENCE, || {
            get(self.address, path)
                .ok()
                .filter(|answer| answer.status == status)
        })
    }

    /// Polls `/metrics` until `http_requests_in_flight` reaches `count`.
    pub fn wait_for_in_flight(&self, count: u64) {
        wait_for(&format!("{count} request(s) in flight"), PATIENCE, || {
            let metrics = get(self.address, "/metrics").ok()?;
            metrics
                .body
                .lines()
                .find(|line| line.starts_with("http_requests_in_flight{"))
                .filter(|line| line.ends_with(&format!(" {count}")))
                .map(|_| ())
        });
    }

    /// Waits for the process to exit.
    pub fn wait_for_exit(&mut self, patience: Duration) -> ExitStatus {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "zdd-demo still running after {patience:?}; logs: {:?}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn listening_address(line: &str) -> Option<SocketAddr> {
    let entry: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = entry.get("fields")?;
    if fields.get("message")?.as_str()? != "zdd-demo listening" {
        return None;
    }
    fields.get("address")?.as_str()?.parse().ok()
}

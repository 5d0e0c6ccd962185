//! Runs the real `zdd-demo` binary on a loopback port the OS picks, with a tiny raw HTTP/1.1
//! client (raw so the tests see exactly what goes over the wire).

#![allow(dead_code)] // each test file uses a part of it

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Upper bound for anything a test waits for; generous for a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(20);
const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);

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
    pub fn wait_for_status(&self, path: &str, status: u16) -> Response {
        eventually(&format!("{path} answers {status}"), || {
            get(self.address, path)
                .ok()
                .filter(|answer| answer.status == status)
        })
    }

    /// Polls `/metrics` until `http_requests_in_flight` reaches `count`.
    pub fn wait_for_in_flight(&self, count: u64) {
        eventually(&format!("{count} request(s) in flight"), || {
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

/// Retries `attempt` every 20 ms until it gives a value, failing the test after [`PATIENCE`].
pub fn eventually<T>(what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP/1.1 answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn asks_to_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
    }
}

/// `GET path` on a fresh connection.
pub fn get(address: SocketAddr, path: &str) -> std::io::Result<Response> {
    let mut connection = Connection::open(address)?;
    connection.send(&format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    ))?;
    connection.read_response()
}

/// A raw (keep-alive) HTTP/1.1 connection.
pub struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    pub fn open(address: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&address, SOCKET_TIMEOUT)?;
        stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
        stream.set_write_timeout(Some(SOCKET_TIMEOUT))?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    pub fn send(&mut self, raw: &str) -> std::io::Result<()> {
        self.reader.get_mut().write_all(raw.as_bytes())
    }

    /// `GET path`, keeping the connection open.
    pub fn get(&mut self, path: &str) -> std::io::Result<Response> {
        self.send(&format!("GET {path} HTTP/1.1\r\nHost: zdd-test\r\n\r\n"))?;
        self.read_response()
    }

    pub fn read_response(&mut self) -> std::io::Result<Response> {
        let mut status_line = String::new();
        if self.reader.read_line(&mut status_line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before an answer",
            ));
        }
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("bad header {line:?}")))?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let length: usize = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .map(|(_, value)| value.parse().map_err(|_| invalid("bad content-length")))
            .transpose()?
            .unwrap_or(0);
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok(Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Whether the server closes the connection (EOF or reset) within `patience`, with no request
    /// sent.
    pub fn closed_by_server_within(&mut self, patience: Duration) -> bool {
        let stream = self.reader.get_mut();
        stream.set_read_timeout(Some(patience)).expect("timeout");
        let mut byte = [0; 1];
        let closed = match stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
        };
        stream
            .set_read_timeout(Some(SOCKET_TIMEOUT))
            .expect("timeout");
        closed
    }
}

fn invalid(message: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.into())
}

//! A raw HTTP/1.1 client for loopback: the request is written as text and the answer parsed by
//! hand, so tests see exactly what goes over the wire.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One answer: status, headers as sent, body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The first header `name` (in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Whether the answer carries `Connection: close`.
    pub fn asks_to_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
    }
}

/// `GET /` on a fresh connection; `url` is `http://HOST:PORT`.
pub async fn get(url: &str) -> io::Result<Answer> {
    get_with(url, "/", &[]).await
}

/// `GET path` on a fresh connection (`Connection: close`), with extra request headers; the answer
/// is whatever comes until the server closes (within 5 s).
pub async fn get_with(url: &str, path: &str, headers: &[(&str, &str)]) -> io::Result<Answer> {
    send(url, "GET", path, headers, None).await
}

/// `method path` on a fresh connection (`Connection: close`), with extra request headers and, when
/// given, a body (with its `Content-Length`); the answer is whatever comes until the server closes
/// (within 5 s).
pub async fn send(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> io::Result<Answer> {
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let request = async {
        let mut stream = TcpStream::connect(authority).await?;
        let mut text =
            format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            text.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        stream.write_all(&bytes).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| io::Error::other(format!("no complete answer: {text:?}")))?;
        let (status, headers) = parse_head(head)?;
        Ok(Answer {
            status,
            headers,
            body: body.to_owned(),
        })
    };
    tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .map_err(|_| io::Error::other("request timed out"))?
}

/// The status line and the header lines of an answer.
fn parse_head(head: &str) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let headers = lines
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("bad header {line:?}")))?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect::<io::Result<_>>()?;
    Ok((status, headers))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The same client for tests that use threads, not a runtime, with keep-alive connections.
pub mod blocking {
    use std::io::{self, BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    use super::{Answer, invalid, parse_head};

    const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);

    /// `GET path` on a fresh connection.
    pub fn get(address: SocketAddr, path: &str) -> io::Result<Answer> {
        let mut connection = Connection::open(address)?;
        connection.send(&format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        ))?;
        connection.read_answer()
    }

    /// A raw (keep-alive) HTTP/1.1 connection.
    pub struct Connection {
        reader: BufReader<TcpStream>,
    }

    impl Connection {
        pub fn open(address: SocketAddr) -> io::Result<Self> {
            let stream = TcpStream::connect_timeout(&address, SOCKET_TIMEOUT)?;
            stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
            stream.set_write_timeout(Some(SOCKET_TIMEOUT))?;
            Ok(Self {
                reader: BufReader::new(stream),
            })
        }

        pub fn send(&mut self, raw: &str) -> io::Result<()> {
            self.reader.get_mut().write_all(raw.as_bytes())
        }

        /// `GET path`, keeping the connection open.
        pub fn get(&mut self, path: &str) -> io::Result<Answer> {
            self.send(&format!("GET {path} HTTP/1.1\r\nHost: zdd-test\r\n\r\n"))?;
            self.read_answer()
        }

        /// The next answer; its body is `Content-Length` bytes long (none without one).
        pub fn read_answer(&mut self) -> io::Result<Answer> {
            let mut head = String::new();
            if self.reader.read_line(&mut head)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before an answer",
                ));
            }
            loop {
                let mut line = String::new();
                self.reader.read_line(&mut line)?;
                if line.trim_end().is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            let (status, headers) = parse_head(&head)?;
            let mut answer = Answer {
                status,
                headers,
                body: String::new(),
            };
            let length: usize = answer
                .header("content-length")
                .map(|value| {
                    value
                        .parse()
                        .map_err(|_| invalid("bad content-length".into()))
                })
                .transpose()?
                .unwrap_or(0);
            let mut body = vec![0; length];
            self.reader.read_exact(&mut body)?;
            answer.body = String::from_utf8_lossy(&body).into_owned();
            Ok(answer)
        }

        /// Whether the server closes the connection (EOF or reset) within `patience`, with no
        /// request sent.
        pub fn closed_by_server_within(&mut self, patience: Duration) -> bool {
            let stream = self.reader.get_mut();
            stream.set_read_timeout(Some(patience)).expect("timeout");
            let mut byte = [0; 1];
            let closed = match stream.read(&mut byte) {
                Ok(0) => true,
                Ok(_) => false,
                Err(error) => error.kind() == io::ErrorKind::ConnectionReset,
            };
            stream
                .set_read_timeout(Some(SOCKET_TIMEOUT))
                .expect("timeout");
            closed
        }
    }
}

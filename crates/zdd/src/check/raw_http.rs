//! The raw HTTP/1.1 a check needs beyond `http_get`: a request whose whole answer must arrive
//! (so a cut after the head shows), and a keep-alive connection used like a pooled client's.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most of one answer that is kept (the rest of a body is read and dropped).
const MAX_HEAD: usize = 64 * 1024;

/// An answer read whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The server said it closes the connection after this answer (`Connection: close`, or
    /// HTTP/1.0 without `keep-alive`).
    pub closes: bool,
}

/// `GET path` on a fresh connection, read to the end of its answer; an error when the connection
/// broke before the whole answer.
pub async fn get_whole(addr: SocketAddr, path: &str) -> io::Result<Answer> {
    let mut connection = Connection::open(addr).await?;
    connection.send(path, false).await?;
    connection.read_answer().await
}

/// One client connection that keeps its requests on the same TCP connection.
pub struct Connection {
    stream: TcpStream,
    host: String,
    /// Bytes read past the last answer.
    buffer: Vec<u8>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream,
            host: addr.to_string(),
            buffer: Vec::new(),
        })
    }

    /// `GET path`, answered whole.
    pub async fn request(&mut self, path: &str) -> io::Result<Answer> {
        self.send(path, true).await?;
        self.read_answer().await
    }

    /// Whether the server has closed (or reset) the connection while it was idle, without
    /// waiting: what a pooled client learns before it reuses a connection.
    pub fn closed_by_peer(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.try_read(&mut byte) {
            Ok(0) => true,
            // Bytes nobody asked for: the connection cannot be trusted with a request either.
            Ok(_) => true,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => false,
            Err(_) => true,
        }
    }

    async fn send(&mut self, path: &str, keep_alive: bool) -> io::Result<()> {
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: zdd-check\r\nAccept: */*\r\n\
             Connection: {connection}\r\n\r\n",
            self.host
        );
        self.stream.write_all(request.as_bytes()).await
    }

    async fn read_answer(&mut self) -> io::Result<Answer> {
        let (head_len, status, closes, framing) = loop {
            if let Some(parsed) = parse_head(&self.buffer)? {
                break parsed;
            }
            if self.buffer.len() > MAX_HEAD {
                return Err(invalid("an answer head longer than 64 KiB"));
            }
            self.fill("before the whole answer head").await?;
        };
        self.buffer.drain(..head_len);
        match framing {
            Framing::Length(length) => self.skip_exactly(length).await?,
            Framing::Chunked => self.skip_chunked().await?,
            Framing::UntilClose => loop {
                self.buffer.clear();
                let mut chunk = [0u8; 8192];
                if self.stream.read(&mut chunk).await? == 0 {
                    break;
                }
            },
        }
        Ok(Answer {
            status,
            closes: closes || framing == Framing::UntilClose,
        })
    }

    /// Reads more bytes into the buffer; an end of stream is an error naming `while`.
    async fn fill(&mut self, before: &str) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        let read = self.stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the connection closed {before}"),
            ));
        }
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(())
    }

    async fn skip_exactly(&mut self, mut length: usize) -> io::Result<()> {
        loop {
            let taken = length.min(self.buffer.len());
            self.buffer.drain(..taken);
            length -= taken;
            if length == 0 {
                return Ok(());
            }
            self.fill("before the whole body").await?;
        }
    }

    async fn skip_chunked(&mut self) -> io::Result<()> {
        loop {
            let line_end = loop {
                if let Some(at) = find(&self.buffer, b"\r\n") {
                    break at;
                }
                self.fill("inside a chunked body").await?;
            };
            let size_text = String::from_utf8_lossy(&self.buffer[..line_end]).to_string();
            let size_hex = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| invalid(format!("a bad chunk size {size_hex:?}")))?;
            self.buffer.drain(..line_end + 2);
            if size == 0 {
                // Trailers, if any, end with an empty line.
                loop {
                    if self.buffer.starts_with(b"\r\n") {
                        self.buffer.drain(..2);
                        return Ok(());
                    }
                    if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                        self.buffer.drain(..at + 4);
                        return Ok(());
                    }
                    self.fill("inside a chunked body's trailers").await?;
                }
            }
            self.skip_exactly(size + 2).await?;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// `(head length, status, closes, framing)` once the buffer holds a whole head.
fn parse_head(buffer: &[u8]) -> io::Result<Option<(usize, u16, bool, Framing)>> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(invalid(format!("not an HTTP answer: {err}"))),
    };
    let status = response.code.unwrap_or_default();
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let connection = header("connection").unwrap_or_default();
    let http_1_0 = response.version == Some(0);
    let closes = connection.contains("close") || (http_1_0 && !connection.contains("keep-alive"));
    let no_body = (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if no_body {
        Framing::Length(0)
    } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        Framing::Chunked
    } else if let Some(length) = header("content-length") {
        Framing::Length(
            length
                .parse()
                .map_err(|_| invalid(format!("a bad Content-Length {length:?}")))?,
        )
    } else {
        Framing::UntilClose
    };
    Ok(Some((head_len, status, closes, framing)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_tell_the_framing_and_whether_the_server_closes() {
        let head = |text: &str| parse_head(text.as_bytes()).unwrap().unwrap();
        let (_, status, closes, framing) =
            head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!((status, closes, framing), (200, false, Framing::Length(5)));
        let (_, _, closes, framing) =
            head("HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!((closes, framing), (true, Framing::Chunked));
        let (_, _, closes, framing) = head("HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!((closes, framing), (true, Framing::UntilClose));
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-")
                .unwrap()
                .is_none()
        );
    }
}

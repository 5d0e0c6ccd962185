//! zdd's one small HTTP client for checks that look at one answer at a time: the kubelet's
//! probes, the data-plane checks through a route, Traefik's served configuration. A fresh
//! connection per request (`Connection: close`), so a check never rides on a connection to an
//! endpoint the router no longer picks.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most of an answer that is read; the rest is not needed by any check.
const MAX_ANSWER: usize = 256 * 1024;

/// An answer's status and headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    headers: Vec<(String, String)>,
}

impl Answer {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// 2xx or 3xx, what the kubelet and a route check count as success.
    pub fn is_success(&self) -> bool {
        (200..400).contains(&self.status)
    }
}

/// `GET url` (`http://host:port/path`) with `User-Agent: user_agent`, answered within `timeout`.
pub async fn get(url: &str, user_agent: &str, timeout: Duration) -> io::Result<Answer> {
    match tokio::time::timeout(timeout, exchange(url, user_agent)).await {
        Ok(raw) => parse_head(&raw?).map(|(answer, _)| answer),
        Err(_) => Err(timed_out(timeout)),
    }
}

/// [`get`], with the answer's body (de-chunked): for small JSON answers such as Prometheus'
/// HTTP API. At most 256 KiB are read.
pub async fn get_with_body(
    url: &str,
    user_agent: &str,
    timeout: Duration,
) -> io::Result<(Answer, Vec<u8>)> {
    let raw = match tokio::time::timeout(timeout, exchange(url, user_agent)).await {
        Ok(raw) => raw?,
        Err(_) => return Err(timed_out(timeout)),
    };
    let (answer, head_len) = parse_head(&raw)?;
    let body = &raw[head_len..];
    let chunked = answer
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((answer, body))
}

fn timed_out(timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no answer within {}", humantime::format_duration(timeout)),
    )
}

/// A chunked body's data (trailers ignored).
fn dechunk(mut body: &[u8]) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("a chunked body ends early".into()))?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(data);
        }
        if body.len() < size {
            return Err(invalid("a chunked body ends early".into()));
        }
        data.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

async fn exchange(url: &str, user_agent: &str) -> io::Result<Vec<u8>> {
    let uri: http::Uri = url
        .parse()
        .map_err(|err| invalid(format!("bad URL {url}: {err}")))?;
    let authority = uri
        .authority()
        .ok_or_else(|| invalid(format!("no host in {url}")))?;
    let port = authority.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut stream = TcpStream::connect((authority.host(), port)).await?;
    let _ = stream.set_nodelay(true);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 || raw.len() >= MAX_ANSWER {
            break;
        }
        raw.extend_from_slice(&buffer[..read]);
    }
    Ok(raw)
}

/// The answer's head, and its length in bytes (where the body starts).
fn parse_head(raw: &[u8]) -> io::Result<(Answer, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed before a whole answer head",
            ));
        }
        Err(err) => return Err(invalid(format!("not an HTTP answer: {err}"))),
    };
    let answer = Answer {
        status: response.code.unwrap_or_default(),
        headers: response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).trim().to_string(),
                )
            })
            .collect(),
    };
    Ok((answer, head_len))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

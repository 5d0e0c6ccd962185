//! Connections from the router to the endpoints.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::client::conn::http1 as client_http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::WRITEV;
use super::copy_body::ClientBody;

/// A replica that does not accept within this is unreachable: 502.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the router sends upstream: the client's body as it streams in, or a whole one (a mirror's
/// copy; empty for a replayed request, which has no body).
pub(super) type RequestBody = Either<ClientBody, Full<Bytes>>;

/// An open HTTP/1.1 connection to an endpoint.
pub(super) struct Upstream {
    pub(super) addr: SocketAddr,
    pub(super) sender: client_http1::SendRequest<RequestBody>,
    /// Bytes read from the socket so far (by the connection's task, on the same thread).
    read: Arc<AtomicU64>,
}

impl Upstream {
    /// Bytes received on this connection so far: unchanged between sending a request and its
    /// failure = not one byte of an answer arrived.
    pub(super) fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
pub(super) enum UpstreamError {
    #[error("connect: {0}")]
    Connect(io::Error),
    #[error("connect: no answer within {CONNECT_TIMEOUT:?}")]
    ConnectTimeout,
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

pub(super) async fn connect(addr: SocketAddr) -> Result<Upstream, UpstreamError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| UpstreamError::ConnectTimeout)?
        .map_err(UpstreamError::Connect)?;
    stream.set_nodelay(true).map_err(UpstreamError::Connect)?;
    let read = Arc::new(AtomicU64::new(0));
    let io = CountingStream {
        stream,
        read: read.clone(),
    };
    let (sender, connection) = client_http1::Builder::new()
        .writev(WRITEV)
        .handshake(TokioIo::new(io))
        .await?;
    // Ends when the upstream closes the connection or the sender is dropped (after the answer in
    // flight, if any).
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Upstream { addr, sender, read })
}

/// The upstream socket, counting the bytes read from it.
struct CountingStream {
    stream: TcpStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for CountingStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        let got = (buf.filled().len() - before) as u64;
        if got > 0 {
            // Only this connection's task writes it: a plain load and store.
            let total = this.read.load(Ordering::Relaxed) + got;
            this.read.store(total, Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

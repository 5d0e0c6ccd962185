//! Connections from the router to the endpoints, and each worker's pool of idle ones.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http1 as client_http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{WRITEV, lock};

/// A replica that does not accept within this is unreachable: 502.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle upstream connections a worker keeps per endpoint for new client connections.
pub(super) const POOL_PER_ENDPOINT: usize = 64;

/// An open HTTP/1.1 connection to an endpoint.
pub(super) struct Upstream {
    pub(super) addr: SocketAddr,
    pub(super) sender: client_http1::SendRequest<Incoming>,
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
    let (sender, connection) = client_http1::Builder::new()
        .writev(WRITEV)
        .handshake(TokioIo::new(stream))
        .await?;
    // Ends when the upstream closes the connection or every sender is dropped.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Upstream { addr, sender })
}

/// A worker's idle upstream connections, for client connections that have none to an endpoint.
#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<client_http1::SendRequest<Incoming>>>>,
}

impl Pool {
    pub(super) fn take(&self, addr: SocketAddr) -> Option<Upstream> {
        let mut idle = lock(&self.idle);
        let senders = idle.get_mut(&addr)?;
        while let Some(sender) = senders.pop() {
            if sender.is_ready() {
                return Some(Upstream { addr, sender });
            }
        }
        None
    }

    pub(super) fn put(&self, upstream: Upstream) {
        if !upstream.sender.is_ready() {
            return;
        }
        let mut idle = lock(&self.idle);
        let senders = idle.entry(upstream.addr).or_default();
        senders.retain(|sender| !sender.is_closed());
        if senders.len() < POOL_PER_ENDPOINT {
            senders.push(upstream.sender);
        }
    }
}

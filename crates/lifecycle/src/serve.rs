//! The accept loop and the drain sequence.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use std::convert::Infallible;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::Service;

use crate::Lifecycle;
use crate::connections::OpenConnections;
use crate::error::ServeError;
use crate::request::ConnectionService;

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Every connection finished within the shutdown timeout.
    Completed,
    /// The shutdown timeout expired; `requests_cut_off` requests were still being served.
    TimedOut {
        /// Requests in flight when the timeout struck.
        requests_cut_off: u64,
    },
    /// A second shutdown request (signal) ended the drain at once.
    Forced {
        /// Requests in flight when it ended.
        requests_cut_off: u64,
    },
}

/// What [`Lifecycle::serve`] reports when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// How the drain ended.
    pub outcome: DrainOutcome,
    /// From the first shutdown request to the end.
    pub drain_duration: Duration,
    /// Connections accepted during the drain delay (after the shutdown request).
    pub connections_accepted_while_draining: u64,
}

impl DrainReport {
    /// Whether every request got its answer: the drain completed, or timed out with no request
    /// in flight (only idle or half-sent connections were closed).
    pub fn is_clean(&self) -> bool {
        match self.outcome {
            DrainOutcome::Completed => true,
            DrainOutcome::TimedOut { requests_cut_off } => requests_cut_off == 0,
            DrainOutcome::Forced { .. } => false,
        }
    }

    /// The process exit code: 0 after a clean drain, 1 otherwise.
    pub fn exit_code(&self) -> std::process::ExitCode {
        if self.is_clean() {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        }
    }
}

/// What [`Lifecycle::serve`] can serve: a cloneable tower service that answers every hyper request
/// (its errors are answers, hence `Infallible`) with a body hyper can send from any thread. An
/// axum [`Router`](axum::Router), with or without tower layers around it, is one. Implemented for
/// every such service: a name for the bounds, not something to implement.
pub trait HttpApp:
    Service<
        Request<Incoming>,
        Response = http::Response<Self::Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
    /// The answers' body.
    type Body: hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;
}

impl<S, B> HttpApp for S
where
    S: Service<
            Request<Incoming>,
            Response = http::Response<B>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static,
    B: hyper::body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static,
{
    type Body = B;
}

impl Lifecycle {
    /// Installs the SIGTERM and SIGINT handlers (each signal is a [`request_shutdown`]). Call it
    /// as early as possible (before a long warm-up) so that a signal never kills the process
    /// outright; [`serve`](Self::serve) calls it too. Idempotent; needs a tokio runtime.
    ///
    /// [`request_shutdown`]: Self::request_shutdown
    pub fn listen_for_signals(&self) -> Result<(), ServeError> {
        use tokio::signal::unix::{SignalKind, signal};
        if self.shared.signals_installed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let install = || -> std::io::Result<_> {
            Ok((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            ))
        };
        let (mut terminate, mut interrupt) = install().map_err(|error| {
            self.shared
                .signals_installed
                .store(false, Ordering::Release);
            ServeError::Signals(error)
        })?;
        let lifecycle = self.clone();
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    Some(()) = terminate.recv() => "SIGTERM",
                    Some(()) = interrupt.recv() => "SIGINT",
                    else => return,
                };
                let first = !lifecycle.is_shutting_down();
                if first {
                    tracing::info!(
                        signal = name,
                        "shutdown requested: readiness fails now, draining"
                    );
                } else {
                    tracing::warn!(signal = name, "second shutdown signal: stopping at once");
                }
                lifecycle.request_shutdown();
            }
        });
        Ok(())
    }

    /// Serves `app` on `listener` until a shutdown request (SIGTERM, SIGINT or
    /// [`request_shutdown`](Self::request_shutdown)), then drains:
    ///
    /// 1. readiness answers 503 at once; everything else is still served (and new connections
    ///    accepted) for the drain delay, HTTP/1 answers carrying `Connection: close` so that
    ///    keep-alive clients reconnect to a ready replica;
    /// 2. the listener closes (new connections are refused); idle connections close, busy
    ///    HTTP/1 connections close after their answer (with `Connection: close`), HTTP/2 gets
    ///    GOAWAY;
    /// 3. in-flight requests get up to the shutdown timeout to finish.
    ///
    /// A second shutdown request at any point of the drain returns at once.
    ///
    /// `app` is usually the [`Router`](axum::Router) from [`router`](Self::router), possibly
    /// wrapped in more tower layers (a layer around the whole router is cheaper per request than
    /// `Router::layer`, which wraps each route).
    pub async fn serve<S: HttpApp>(
        &self,
        listener: TcpListener,
        app: S,
    ) -> Result<DrainReport, ServeError> {
        self.listen_for_signals()?;
        let address = listener.local_addr().map_err(ServeError::Listener)?;
        let config = self.config().clone();
        let mut shutdown_requests = self.shared.shutdown_requests.subscribe();
        // No hyper timer (so no header-read timeout): arming one per request costs ~7% of the
        // throughput, and a half-sent request cannot hold the drain anyway: the shutdown timeout
        // bounds it and such a connection is not counted as a request cut off.
        let builder = auto::Builder::new(TokioExecutor::new());
        let connections = Connections {
            builder,
            open: OpenConnections::default(),
            lifecycle: self.clone(),
            app,
        };
        tracing::info!(%address, "serving");

        // Serving until the first shutdown request.
        tokio::select! {
            () = accept_forever(&listener, &connections, None) => unreachable!("accept loop ends only by cancellation"),
            () = wait_for_requests(&mut shutdown_requests, 1) => {}
        }
        let drain_started = Instant::now();
        let mut accepted_while_draining = 0;

        // Drain delay: still serving and accepting, readiness failing.
        let drain_delay_passed = tokio::select! {
            () = accept_forever(&listener, &connections, Some(&mut accepted_while_draining)) => unreachable!("accept loop ends only by cancellation"),
            () = tokio::time::sleep(config.drain_delay) => true,
            () = wait_for_requests(&mut shutdown_requests, 2) => false,
        };
        drop(listener);
        if drain_delay_passed {
            tracing::info!(
                drain_delay = %humantime::format_duration(config.drain_delay),
                in_flight = self.metrics().in_flight(),
                open_connections = connections.open.count(),
                "drain delay passed: listener closed, closing connections"
            );
        }

        let Connections { open, .. } = connections;
        let outcome = if !drain_delay_passed {
            DrainOutcome::Forced {
                requests_cut_off: self.metrics().in_flight(),
            }
        } else {
            tokio::select! {
                () = open.close_all() => DrainOutcome::Completed,
                () = tokio::time::sleep(config.shutdown_timeout) => DrainOutcome::TimedOut {
                    requests_cut_off: self.metrics().in_flight(),
                },
                () = wait_for_requests(&mut shutdown_requests, 2) => DrainOutcome::Forced {
                    requests_cut_off: self.metrics().in_flight(),
                },
            }
        };
        // Whatever is left is cut off now rather than when the runtime goes away.
        open.cut_off();
        self.mark_stopped();
        let report = DrainReport {
            outcome,
            drain_duration: drain_started.elapsed(),
            connections_accepted_while_draining: accepted_while_draining,
        };
        match outcome {
            DrainOutcome::Completed => tracing::info!(?report, "drain completed"),
            _ => tracing::warn!(?report, "drain did not complete"),
        }
        Ok(report)
    }
}

struct Connections<S> {
    builder: auto::Builder<TokioExecutor>,
    open: OpenConnections,
    lifecycle: Lifecycle,
    app: S,
}

impl<S: HttpApp> Connections<S> {
    fn spawn(&self, stream: TcpStream) {
        // Small answers must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let service = ConnectionService::new(self.app.clone(), self.lifecycle.clone());
        let connection = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = self.open.track(connection);
        tokio::spawn(async move {
            // `None`: cut off.
            if let Some(Err(error)) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

/// Accepts and serves connections until the future is dropped.
async fn accept_forever<S: HttpApp>(
    listener: &TcpListener,
    connections: &Connections<S>,
    mut accepted: Option<&mut u64>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                if let Some(count) = accepted.as_deref_mut() {
                    *count += 1;
                }
                connections.spawn(stream);
            }
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn wait_for_requests(requests: &mut watch::Receiver<u32>, count: u32) {
    // The sender lives in the lifecycle, which outlives this call.
    let _ = requests.wait_for(|seen| *seen >= count).await;
}

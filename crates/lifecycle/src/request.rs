//! What [`Lifecycle::serve`](crate::Lifecycle::serve) adds to each request: the request metrics,
//! and `Connection: close` on HTTP/1 answers while draining.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, Version, header};
use hyper::body::Incoming;

use crate::Lifecycle;
use crate::metrics::InFlight;

/// The service hyper calls for each request of one connection.
pub(crate) struct ConnectionService<S> {
    app: S,
    lifecycle: Lifecycle,
}

impl<S> ConnectionService<S> {
    pub(crate) fn new(app: S, lifecycle: Lifecycle) -> Self {
        Self { app, lifecycle }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for ConnectionService<S>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Clone,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = Answer<S, S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        // While draining, HTTP/1 keep-alive clients are told to reconnect (to a ready replica):
        // connection headers are not allowed in HTTP/2, which gets GOAWAY later.
        let close_after = request.version() < Version::HTTP_2 && self.lifecycle.is_shutting_down();
        // Counted here rather than by a `Router::layer`, which would wrap (and box) every route
        // once more on each request. Probes and scrapes are not traffic.
        let in_flight = (!self.lifecycle.is_lifecycle_path(request.uri().path()))
            .then(|| InFlight::enter(self.lifecycle.shared.metrics.clone()));
        // A service is called only once it said it is ready (tower's contract: a backpressure
        // layer panics otherwise). Most are ready at once (axum's router always is): then it is
        // called here, not in a future that would carry the request (hundreds of bytes) that
        // hyper moves around; the answer's future is all it keeps.
        let mut app = self.app.clone();
        let noop = &mut Context::from_waker(std::task::Waker::noop());
        let state = match app.poll_ready(noop) {
            Poll::Ready(Ok(())) => State::Calling {
                answer: app.call(request),
            },
            Poll::Pending => State::Waiting {
                app,
                request: Some(request),
            },
        };
        Answer {
            state,
            in_flight,
            close_after,
        }
    }
}

pin_project_lite::pin_project! {
    /// The app's answer to one request, counted when it is ready.
    pub(crate) struct Answer<S, F> {
        #[pin]
        state: State<S, F>,
        // Leaves the in-flight count when dropped, also unanswered (client gone, cut off).
        in_flight: Option<InFlight>,
        close_after: bool,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProjection]
    enum State<S, F> {
        /// The app was not ready yet: it is polled until it is, then called.
        Waiting { app: S, request: Option<Request<Incoming>> },
        Calling { #[pin] answer: F },
    }
}

impl<S, B> Future for Answer<S, S::Future>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>,
{
    type Output = Result<Response<B>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut response = loop {
            match this.state.as_mut().project() {
                StateProjection::Waiting { app, request } => {
                    let Ok(()) = std::task::ready!(app.poll_ready(cx));
                    let request = request.take().expect("called once");
                    let answer = app.call(request);
                    this.state.set(State::Calling { answer });
                }
                StateProjection::Calling { answer } => {
                    let Ok(response) = std::task::ready!(answer.poll(cx));
                    break response;
                }
            }
        };
        if let Some(in_flight) = this.in_flight.take() {
            in_flight.answered(response.status());
        }
        if *this.close_after {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(response))
    }
}

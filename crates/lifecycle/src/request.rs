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
    type Future = Answer<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        // While draining, HTTP/1 keep-alive clients are told to reconnect (to a ready replica):
        // connection headers are not allowed in HTTP/2, which gets GOAWAY later.
        let close_after = request.version() < Version::HTTP_2 && self.lifecycle.is_shutting_down();
        // Counted here rather than by a `Router::layer`, which would wrap (and box) every route
        // once more on each request. Probes and scrapes are not traffic.
        let in_flight = (!self.lifecycle.is_lifecycle_path(request.uri().path()))
            .then(|| InFlight::enter(self.lifecycle.shared.metrics.clone()));
        // Called here, not in an async block that would carry the request (hundreds of bytes)
        // in the future hyper moves around: the answer's future is all it keeps.
        Answer {
            answer: self.app.clone().call(request),
            in_flight,
            close_after,
        }
    }
}

pin_project_lite::pin_project! {
    /// The app's answer to one request, counted when it is ready.
    pub(crate) struct Answer<F> {
        #[pin]
        answer: F,
        // Leaves the in-flight count when dropped, also unanswered (client gone, cut off).
        in_flight: Option<InFlight>,
        close_after: bool,
    }
}

impl<F, B> Future for Answer<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    type Output = Result<Response<B>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = std::task::ready!(this.answer.poll(cx));
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

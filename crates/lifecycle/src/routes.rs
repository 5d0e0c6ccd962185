//! The probe and metrics routes, and the tower layer that counts the app's requests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{Request, StatusCode, header};

use crate::Lifecycle;
use crate::metrics::{CONTENT_TYPE, InFlight, Metrics};

impl Lifecycle {
    /// Adds the liveness, readiness (plus their aliases) and metrics routes to `app`. The paths
    /// must not overlap the app's routes (axum panics on overlapping routes).
    ///
    /// [`serve`](Self::serve) counts the app's requests in the metrics (not the probes'); when
    /// you serve the router some other way, add [`layer`](Self::layer) to count them.
    pub fn with_probe_routes(&self, app: Router) -> Router {
        let config = self.config();
        let mut probes = Router::new();
        for path in std::iter::once(&config.liveness_path).chain(&config.liveness_aliases) {
            let lifecycle = self.clone();
            probes = probes.route(path, get(move || liveness(lifecycle.clone())));
        }
        for path in std::iter::once(&config.readiness_path).chain(&config.readiness_aliases) {
            let lifecycle = self.clone();
            probes = probes.route(path, get(move || readiness(lifecycle.clone())));
        }
        let metrics = self.shared.metrics.clone();
        probes = probes.route(
            &config.metrics_path,
            get(move || {
                let text = metrics.encode();
                async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], text) }
            }),
        );
        probes.merge(app)
    }

    /// Whether `path` is one of the lifecycle's own routes (probes, metrics): those are not
    /// counted as requests.
    pub fn is_lifecycle_path(&self, path: &str) -> bool {
        let config = self.config();
        path == config.readiness_path
            || path == config.liveness_path
            || path == config.metrics_path
            || config.readiness_aliases.iter().any(|alias| alias == path)
            || config.liveness_aliases.iter().any(|alias| alias == path)
    }

    /// The layer that counts requests (by status), requests in flight and their duration, for
    /// services not run by [`serve`](Self::serve) (which counts them itself: do not add both).
    pub fn layer(&self) -> RequestMetricsLayer {
        RequestMetricsLayer {
            metrics: self.shared.metrics.clone(),
        }
    }
}

async fn liveness(lifecycle: Lifecycle) -> Response {
    if lifecycle.is_live() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n").into_response()
    }
}

async fn readiness(lifecycle: Lifecycle) -> Response {
    if lifecycle.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let state = lifecycle.state();
        let why = if state == crate::State::Ready {
            "unready (held down)"
        } else {
            state.as_str()
        };
        (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response()
    }
}

/// Tower layer counting requests; see [`Lifecycle::layer`].
#[derive(Clone, Debug)]
pub struct RequestMetricsLayer {
    metrics: Arc<Metrics>,
}

impl<S> tower::Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`RequestMetricsLayer`].
#[derive(Clone, Debug)]
pub struct RequestMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, ResponseBody> tower::Service<Request<B>> for RequestMetrics<S>
where
    S: tower::Service<Request<B>, Response = http::Response<ResponseBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RequestMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Entered before the inner call so the count covers the whole handler; the guard also
        // leaves the count when the future is dropped (client gone, or cut off by the timeout).
        let in_flight = InFlight::enter(self.metrics.clone());
        RequestMetricsFuture {
            answer: self.inner.call(request),
            in_flight: Some(in_flight),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`RequestMetrics`].
    pub struct RequestMetricsFuture<F> {
        #[pin]
        answer: F,
        in_flight: Option<InFlight>,
    }
}

impl<F, ResponseBody, E> Future for RequestMetricsFuture<F>
where
    F: Future<Output = Result<http::Response<ResponseBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.answer.poll(cx));
        if let (Ok(response), Some(in_flight)) = (&result, this.in_flight.take()) {
            in_flight.answered(response.status());
        }
        Poll::Ready(result)
    }
}

//! An answer's body on its way to the client: at its end, its upstream connection goes back to
//! the worker's pool (not before, so no other request waits behind a body still streaming).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::WorkerState;
use super::upstream::Upstream;

pub(super) struct AnswerBody {
    inner: Incoming,
    /// The connection the answer came on, when it can carry another request.
    upstream: Option<Upstream>,
    /// The whole answer went through.
    ended: bool,
    worker: Arc<WorkerState>,
    /// The table generation the endpoint was picked from.
    generation: u64,
}

impl AnswerBody {
    pub(super) fn new(
        inner: Incoming,
        upstream: Option<Upstream>,
        worker: Arc<WorkerState>,
        generation: u64,
    ) -> Self {
        AnswerBody {
            inner,
            upstream,
            ended: false,
            worker,
            generation,
        }
    }

    fn check_in(&mut self) {
        let Some(upstream) = self.upstream.take() else {
            return;
        };
        let table = self.worker.shared.table.load();
        // An endpoint that left the table gets no more requests: its connection closes here.
        if table.generation != self.generation && !table.routes_to(upstream.addr) {
            return;
        }
        self.worker.pool.put(upstream, &table);
    }
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.ended = true,
            Poll::Ready(Some(Ok(_))) => this.ended = this.inner.is_end_stream(),
            // Cut short: the connection is in an unknown state.
            Poll::Ready(Some(Err(_))) => this.upstream = None,
            Poll::Pending => {}
        }
        if this.ended {
            this.check_in();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        // A body with nothing left to read may be dropped unpolled (an empty one, or after its
        // last byte was written). One dropped before its end (the client left) leaves unread
        // bytes on the connection: that connection closes.
        if self.ended || self.inner.is_end_stream() {
            self.check_in();
        }
    }
}

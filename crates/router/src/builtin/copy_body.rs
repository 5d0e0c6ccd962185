//! A client's request body on its way upstream. For a request the mirror copies, its chunks are
//! kept as they pass (reference-counted, not copied), up to the mirror's body limit, and the copy
//! goes to the worker's queue once the body is whole: the client's request is never held back.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::Request;
use http::header::TRANSFER_ENCODING;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::WorkerState;
use super::mirror::{CompiledMirror, Copy};

pub(super) struct ClientBody {
    inner: Incoming,
    copy: Option<Box<BodyCopy>>,
}

/// A copy waiting for the rest of its body.
pub(super) struct BodyCopy {
    copy: Copy,
    chunks: Vec<Bytes>,
    size: usize,
    worker: Arc<WorkerState>,
}

impl ClientBody {
    pub(super) fn new(inner: Incoming, copy: Option<Box<BodyCopy>>) -> ClientBody {
        ClientBody { inner, copy }
    }
}

impl BodyCopy {
    /// Starts the copy of `request` for `mirror`: queued at once when it has no body, kept until
    /// its body is whole otherwise (the returned copy), not made when the body is known to be
    /// larger than the limit (counted).
    pub(super) fn start(
        worker: &Arc<WorkerState>,
        mirror: Arc<CompiledMirror>,
        request: &Request<Incoming>,
    ) -> Option<Box<BodyCopy>> {
        let limit = worker.mirror.options.max_body;
        if request.body().size_hint().lower() > limit as u64 {
            mirror.counters.skipped_too_large();
            return None;
        }
        let mut headers = request.headers().clone();
        // The copy's body goes whole, with its length.
        headers.remove(TRANSFER_ENCODING);
        let copy = Copy {
            mirror,
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers,
            body: Bytes::new(),
        };
        if request.body().is_end_stream() {
            worker.mirror.enqueue(copy);
            return None;
        }
        Some(Box::new(BodyCopy {
            copy,
            chunks: Vec::new(),
            size: 0,
            worker: worker.clone(),
        }))
    }

    /// Keeps `chunk`; false (counted) once the body is over the limit.
    fn keep(&mut self, chunk: &Bytes) -> bool {
        self.size += chunk.len();
        if self.size > self.worker.mirror.options.max_body {
            self.copy.mirror.counters.skipped_too_large();
            return false;
        }
        self.chunks.push(chunk.clone());
        true
    }

    fn finish(self: Box<Self>) {
        let BodyCopy {
            mut copy,
            chunks,
            size,
            worker,
        } = *self;
        copy.body = match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.into_iter().next().unwrap_or_default(),
            _ => {
                let mut whole = BytesMut::with_capacity(size);
                for chunk in chunks {
                    whole.extend_from_slice(&chunk);
                }
                whole.freeze()
            }
        };
        worker.mirror.enqueue(copy);
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if this.copy.is_some() {
            let ended = match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    let kept = match (frame.data_ref(), this.copy.as_mut()) {
                        (Some(chunk), Some(copy)) => copy.keep(chunk),
                        _ => true,
                    };
                    if !kept {
                        this.copy = None;
                    }
                    this.inner.is_end_stream()
                }
                Poll::Ready(None) => true,
                // Cut short: there is no whole body to copy.
                Poll::Ready(Some(Err(_))) => {
                    this.copy = None;
                    false
                }
                Poll::Pending => false,
            };
            if ended && let Some(copy) = this.copy.take() {
                copy.finish();
            }
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

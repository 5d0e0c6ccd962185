//! The open connections of a server, for the drain: counted, asked to close all at once (idle ones
//! close, busy HTTP/1 ones after their answer, HTTP/2 gets GOAWAY), waited for, or cut off.
//!
//! What hyper-util's `GracefulShutdown` and a `CancellationToken` did, without their cost on every
//! wake-up of every connection: two tokio notification futures polled each time, each locking a
//! mutex that all connections share (about 350 instructions per request, plus the two cores
//! contending for those locks). Here a connection reads one atomic per wake-up and hands its waker
//! over once.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::Notify;

const SERVING: u8 = 0;
const CLOSING: u8 = 1;
const CUT_OFF: u8 = 2;

/// The server's handle on its open connections.
#[derive(Default)]
pub(crate) struct OpenConnections {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// SERVING, then CLOSING, then CUT_OFF. Written before the lock that registers wakers is
    /// taken to wake them all: a connection either sees the new phase or is woken to see it.
    phase: AtomicU8,
    slots: Mutex<Slots>,
    all_closed: Notify,
}

/// One slot per open connection, holding its waker from its first poll; free slots are reused.
#[derive(Default)]
struct Slots {
    slots: Vec<Slot>,
    free: Vec<usize>,
    open: usize,
}

enum Slot {
    Free,
    Open(Option<Waker>),
}

impl Shared {
    fn slots(&self) -> MutexGuard<'_, Slots> {
        // Nothing panics while holding the lock; a poisoned lock still holds sound data.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enter(&self, phase: u8) {
        self.phase.store(phase, Ordering::Release);
        let slots = self.slots();
        for slot in &slots.slots {
            if let Slot::Open(Some(waker)) = slot {
                waker.wake_by_ref();
            }
        }
    }
}

impl OpenConnections {
    /// `connection`, counted until it ends (or is dropped) and closed by the drain.
    pub(crate) fn track<C: GracefulConnection>(&self, connection: C) -> Tracked<C> {
        let mut slots = self.shared.slots();
        let slot = match slots.free.pop() {
            Some(slot) => {
                slots.slots[slot] = Slot::Open(None);
                slot
            }
            None => {
                slots.slots.push(Slot::Open(None));
                slots.slots.len() - 1
            }
        };
        slots.open += 1;
        Tracked {
            connection,
            shared: self.shared.clone(),
            slot,
            waker: None,
            closing: false,
        }
    }

    /// Connections open now.
    pub(crate) fn count(&self) -> usize {
        self.shared.slots().open
    }

    /// Asks every connection to close, then waits until none is left.
    pub(crate) async fn close_all(&self) {
        self.shared.enter(CLOSING);
        loop {
            // Created before the count is read, so that a close in between is not missed.
            let all_closed = self.shared.all_closed.notified();
            if self.count() == 0 {
                return;
            }
            all_closed.await;
        }
    }

    /// Ends every connection at its next wake-up, whatever it is doing.
    pub(crate) fn cut_off(&self) {
        self.shared.enter(CUT_OFF);
    }
}

pin_project_lite::pin_project! {
    /// A connection of [`OpenConnections`]: its output, or `None` when it was cut off.
    pub(crate) struct Tracked<C> {
        #[pin]
        connection: C,
        shared: Arc<Shared>,
        slot: usize,
        // The waker handed over, to hand it over again only if the task's waker changes.
        waker: Option<Waker>,
        closing: bool,
    }

    impl<C> PinnedDrop for Tracked<C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut slots = this.shared.slots();
            // Dropped after the lock is released, as a waker's drop may run arbitrary code.
            let _waker = std::mem::replace(&mut slots.slots[*this.slot], Slot::Free);
            slots.free.push(*this.slot);
            slots.open -= 1;
            if slots.open == 0 {
                this.shared.all_closed.notify_waiters();
            }
            drop(slots);
        }
    }
}

impl<C: GracefulConnection> Future for Tracked<C> {
    type Output = Option<C::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !this
            .waker
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            let waker = cx.waker().clone();
            let replaced = std::mem::replace(
                &mut this.shared.slots().slots[*this.slot],
                Slot::Open(Some(waker.clone())),
            );
            // Dropped after the lock is released, as a waker's drop may run arbitrary code.
            drop(replaced);
            *this.waker = Some(waker);
        }
        match this.shared.phase.load(Ordering::Acquire) {
            SERVING => {}
            CLOSING => {
                if !*this.closing {
                    *this.closing = true;
                    this.connection.as_mut().graceful_shutdown();
                }
            }
            _ => return Poll::Ready(None),
        }
        this.connection.poll(cx).map(Some)
    }
}

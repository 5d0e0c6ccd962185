//! Timestamped rollout events on the same clock as the probe's samples, so a report can say which
//! step caused which failures.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use zdd_probe::Event;

/// A cheap-to-clone handle that records events. Every part of a run (engine, platform, router)
/// holds one; they share `origin`, which is also the probe's time zero.
#[derive(Clone)]
pub struct EventLog {
    origin: Instant,
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    events: Vec<Event>,
    /// JSON lines `{"t_s": ..., "label": ...}`, the format `zdd probe --events` reads.
    sink: Option<Box<dyn Write + Send>>,
}

impl EventLog {
    pub fn new(origin: Instant) -> Self {
        EventLog {
            origin,
            inner: Arc::new(Mutex::new(Inner {
                events: Vec::new(),
                sink: None,
            })),
        }
    }

    /// Also writes every event as a JSON line to `sink`.
    pub fn with_sink(origin: Instant, sink: Box<dyn Write + Send>) -> Self {
        let log = Self::new(origin);
        log.inner.lock().expect("event log poisoned").sink = Some(sink);
        log
    }

    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Records `label` at the current time.
    pub fn emit(&self, label: impl Into<String>) {
        let event = Event {
            t_s: self.origin.elapsed().as_secs_f64(),
            label: label.into(),
        };
        tracing::info!(t_s = format!("{:.3}", event.t_s), "{}", event.label);
        let mut inner = self.inner.lock().expect("event log poisoned");
        if let (Some(sink), Ok(line)) = (inner.sink.as_mut(), serde_json::to_string(&event)) {
            // An unwritable events file must not stop a rollout; the events stay in memory.
            let _ = writeln!(sink, "{line}").and_then(|_| sink.flush());
        }
        inner.events.push(event);
    }

    /// Every event so far, oldest first.
    pub fn snapshot(&self) -> Vec<Event> {
        self.inner
            .lock()
            .expect("event log poisoned")
            .events
            .clone()
    }
}

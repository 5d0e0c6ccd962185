//! What one `zdd check` run measured. Every time is in seconds on the run's clock (the events'
//! time zero), so an answer can be placed against SIGTERM, the exit and the endpoint removal.

use serde::Serialize;

use crate::events::PodExit;

/// One answer (or none) to a request, at the time the request was sent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Observation {
    pub at_s: f64,
    pub reply: Reply,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    Status {
        status: u16,
    },
    /// Nothing listened: the connection was refused.
    Refused,
    /// Reset, closed before an answer, timed out...
    Failed {
        error: String,
    },
}

impl Reply {
    /// 200–399, what the kubelet counts as a passing probe.
    pub fn is_success(&self) -> bool {
        matches!(self, Reply::Status { status } if (200..400).contains(status))
    }

    pub fn is_refused(&self) -> bool {
        matches!(self, Reply::Refused)
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Status { status } => write!(f, "answered {status}"),
            Reply::Refused => f.write_str("refused the connection"),
            Reply::Failed { error } => write!(f, "failed ({error})"),
        }
    }
}

/// The probe paths in use, and why when they are not the ones asked for.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Paths {
    pub readiness: String,
    pub liveness: String,
    pub notes: Vec<String>,
}

/// How a process's start went, from the supervisor's `PodStarted` on.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Start {
    pub started_s: Option<f64>,
    /// The first HTTP answer on the readiness path, whatever its status.
    pub first_answer_s: Option<f64>,
    /// The first 200–399 on the readiness path.
    pub ready_s: Option<f64>,
    /// A status the readiness path answered before it answered 200 (a warm-up).
    pub unready_status: Option<u16>,
    pub end: StartEnd,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StartEnd {
    Ready,
    /// The readiness path answered 404.
    PathNotFound,
    Exited {
        how: PodExit,
    },
    FailedToStart {
        error: String,
    },
    /// Still not ready (or not answering at all) when the start timeout ran out.
    #[default]
    TimedOut,
}

/// The termination sequence as the supervisor ran it and the app's answers around it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Termination {
    /// `scale` to 0: the endpoint removal starts travelling to the router, preStop starts.
    pub terminating_s: f64,
    pub sigterm_s: Option<f64>,
    pub sigkill_s: Option<f64>,
    pub exit_s: Option<f64>,
    pub exit: Option<PodExit>,
    /// When the router stopped sending the app new requests.
    pub removal_s: Option<f64>,
    /// Readiness and liveness on fresh connections, from before SIGTERM to the exit.
    pub readiness: Vec<Observation>,
    pub liveness: Vec<Observation>,
}

impl Termination {
    /// The first observation at or after SIGTERM that is not a success.
    pub fn first_failure_after_sigterm(
        observations: &[Observation],
        sigterm_s: f64,
    ) -> Option<&Observation> {
        observations
            .iter()
            .find(|o| o.at_s >= sigterm_s && !o.reply.is_success())
    }

    /// How long after SIGTERM the app kept accepting new connections: until the first refused
    /// connection, else until it exited.
    pub fn accepting_after_sigterm_s(&self) -> Option<f64> {
        let sigterm = self.sigterm_s?;
        let refused = self
            .readiness
            .iter()
            .chain(&self.liveness)
            .filter(|o| o.at_s >= sigterm && o.reply.is_refused())
            .map(|o| o.at_s)
            .fold(None, |first: Option<f64>, at| {
                Some(first.map_or(at, |f| f.min(at)))
            });
        refused.or(self.exit_s).map(|end| (end - sigterm).max(0.0))
    }
}

/// The slow request sent so that it is in flight at SIGTERM.
#[derive(Clone, Debug, Serialize)]
pub struct SlowRequest {
    pub path: String,
    pub sent_s: f64,
    pub ended_s: f64,
    pub outcome: SlowOutcome,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SlowOutcome {
    /// A whole answer arrived.
    Answered {
        status: u16,
    },
    /// The connection broke before the whole answer.
    Cut {
        error: String,
    },
    TimedOut,
}

/// How the keep-alive connection opened before SIGTERM ended.
#[derive(Clone, Debug, Serialize)]
pub struct KeepAlive {
    /// Answers it carried.
    pub answers: u32,
    pub end: KeepAliveEnd,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeepAliveEnd {
    /// The app closed the connection after its first answer: it keeps none alive.
    NotKeptAlive,
    CouldNotOpen {
        error: String,
    },
    /// An answer said `Connection: close`.
    ToldToClose {
        at_s: f64,
    },
    /// The app closed it while no request was on it.
    ClosedIdle {
        at_s: f64,
    },
    /// A request was sent on it and the connection broke before the answer.
    BrokenUnderRequest {
        at_s: f64,
        error: String,
    },
    /// Still open when the observation ended.
    StillOpen,
}

/// The background traffic through the router, attributed to the app (the other replica is zdd's
/// reference service, which drops nothing).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Traffic {
    pub rate: u32,
    pub sent: u64,
    /// Requests the app answered (200–399) after SIGTERM.
    pub answered_after_sigterm: u64,
    /// Failures other than 4xx (an app's 404 is still an answer).
    pub failed: u64,
    pub failed_by_kind: std::collections::BTreeMap<String, u64>,
}

/// Check 8: a new process of the same command on the port the old one left.
#[derive(Clone, Debug, Serialize)]
pub struct Restart {
    pub port: u16,
    pub start: Start,
    /// The last lines of the new process's output, when it did not listen.
    pub log_tail: Option<String>,
}

/// Everything one run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Measurements {
    pub paths: Paths,
    pub start: Start,
    pub termination: Option<Termination>,
    pub slow: Option<SlowRequest>,
    pub keep_alive: Option<KeepAlive>,
    pub traffic: Option<Traffic>,
    pub restart: Option<Restart>,
}

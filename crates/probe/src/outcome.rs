//! What one request ended as, and how errors map to failure kinds.

use std::io;

/// Why a request failed. The names are the keys of `failed_by_kind` in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureKind {
    /// The server answered 5xx.
    Http5xx,
    /// The server answered 4xx.
    Http4xx,
    /// Nobody listened: ECONNREFUSED at connect.
    Refused,
    /// The connection broke: ECONNRESET, broken pipe, or closed before a complete response
    /// (also on a reused keep-alive connection; users see that too).
    Reset,
    /// No complete answer within `--timeout`.
    Timeout,
    /// All connection slots were busy at the scheduled time, so the request never started.
    Saturated,
    /// Anything else (unparsable response, DNS failure...).
    Other,
}

impl FailureKind {
    pub const ALL: [FailureKind; 7] = [
        FailureKind::Http5xx,
        FailureKind::Http4xx,
        FailureKind::Refused,
        FailureKind::Reset,
        FailureKind::Timeout,
        FailureKind::Saturated,
        FailureKind::Other,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Http5xx => "http_5xx",
            FailureKind::Http4xx => "http_4xx",
            FailureKind::Refused => "refused",
            FailureKind::Reset => "reset",
            FailureKind::Timeout => "timeout",
            FailureKind::Saturated => "saturated",
            FailureKind::Other => "other",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Classifies an error of connect, write or read on a socket.
    pub(crate) fn from_io(err: &io::Error) -> FailureKind {
        match err.kind() {
            io::ErrorKind::ConnectionRefused => FailureKind::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected => FailureKind::Reset,
            io::ErrorKind::TimedOut => FailureKind::Timeout,
            _ => FailureKind::Other,
        }
    }

    /// The kind of an HTTP status, `None` when it counts as ok (1xx, 2xx, 3xx).
    pub(crate) fn from_status(status: u16) -> Option<FailureKind> {
        match status {
            500..=599 => Some(FailureKind::Http5xx),
            400..=499 => Some(FailureKind::Http4xx),
            _ => None,
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one request ended.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RequestOutcome {
    /// 2xx or 3xx; the version that answered, when it said.
    Ok { version: Option<String> },
    /// `answered`: an HTTP response arrived (its latency is meaningful); `version`: the version
    /// that answered, when it said (a 5xx of the new version counts against it in analysis).
    Failed {
        kind: FailureKind,
        answered: bool,
        version: Option<String>,
    },
}

impl RequestOutcome {
    pub(crate) fn failed(kind: FailureKind) -> Self {
        RequestOutcome::Failed {
            kind,
            answered: false,
            version: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_split_into_ok_4xx_and_5xx() {
        assert_eq!(FailureKind::from_status(200), None);
        assert_eq!(FailureKind::from_status(302), None);
        assert_eq!(FailureKind::from_status(404), Some(FailureKind::Http4xx));
        assert_eq!(FailureKind::from_status(502), Some(FailureKind::Http5xx));
    }

    #[test]
    fn socket_errors_map_to_refused_reset_timeout() {
        let kind = |k| FailureKind::from_io(&io::Error::from(k));
        assert_eq!(kind(io::ErrorKind::ConnectionRefused), FailureKind::Refused);
        assert_eq!(kind(io::ErrorKind::ConnectionReset), FailureKind::Reset);
        assert_eq!(kind(io::ErrorKind::BrokenPipe), FailureKind::Reset);
        assert_eq!(kind(io::ErrorKind::TimedOut), FailureKind::Timeout);
        assert_eq!(kind(io::ErrorKind::PermissionDenied), FailureKind::Other);
    }

    #[test]
    fn kind_names_are_distinct() {
        let names: std::collections::BTreeSet<_> =
            FailureKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), FailureKind::COUNT);
        for (i, kind) in FailureKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }
}

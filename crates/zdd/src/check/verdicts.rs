//! The eight checks: each turns the measurements into a verdict, what was measured, and the fix.
//! A check that cannot apply is skipped, never passed.

use std::fmt;

use serde::Serialize;

use super::config::CheckConfig;
use super::measurements::{
    KeepAliveEnd, Measurements, Observation, SlowOutcome, StartEnd, Termination,
};
use crate::events::PodExit;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Nothing wrong was measured, but nothing proves it right either.
    Info,
    /// The check could not apply (what is missing is in `measured`).
    Skipped,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Info => "info",
            Verdict::Skipped => "skipped",
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    pub number: u8,
    pub name: &'static str,
    pub verdict: Verdict,
    pub measured: String,
    /// What to change; empty when nothing needs to.
    pub fix: String,
}

/// The names of the checks, in order.
pub const NAMES: [&str; 8] = [
    "readiness",
    "liveness is not readiness",
    "readiness fails promptly",
    "serves through the propagation delay",
    "in-flight requests finish",
    "keep-alive connections end cleanly",
    "exits in time",
    "restartable at once",
];

/// Every check's result, in order.
pub fn judge(config: &CheckConfig, m: &Measurements) -> Vec<CheckResult> {
    let verdicts = [
        readiness(config, m),
        liveness(m),
        readiness_fails(config, m),
        propagation(config, m),
        in_flight(config, m),
        keep_alive(m),
        exit(config, m),
        restart(m),
    ];
    verdicts
        .into_iter()
        .zip(NAMES)
        .enumerate()
        .map(|(index, ((verdict, measured, fix), name))| CheckResult {
            number: index as u8 + 1,
            name,
            verdict,
            measured,
            fix: if verdict == Verdict::Pass {
                String::new()
            } else {
                fix.to_owned()
            },
        })
        .collect()
}

type Judged = (Verdict, String, &'static str);

/// `41 ms`, `1.23 s`, `30 s`.
pub fn human(seconds: f64) -> String {
    if seconds.abs() < 1.0 {
        format!("{:.0} ms", seconds * 1000.0)
    } else {
        let text = format!("{seconds:.2}");
        format!("{} s", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

fn human_duration(duration: std::time::Duration) -> String {
    human(duration.as_secs_f64())
}

fn skipped(why: impl Into<String>) -> Judged {
    (Verdict::Skipped, why.into(), "")
}

const NEVER_READY: &str = "the app never became ready";

/// The termination and its SIGTERM, or why a check on them must be skipped.
fn terminated(m: &Measurements) -> Result<(&Termination, f64), Judged> {
    let termination = m.termination.as_ref().ok_or_else(|| skipped(NEVER_READY))?;
    let sigterm = termination
        .sigterm_s
        .ok_or_else(|| skipped("no SIGTERM: the process exited during the preStop sleep"))?;
    Ok((termination, sigterm))
}

/// Observations from SIGTERM until the process exited.
fn while_running<'a>(
    observations: &'a [Observation],
    termination: &Termination,
    sigterm: f64,
) -> impl Iterator<Item = &'a Observation> {
    let exit = termination.exit_s.unwrap_or(f64::INFINITY);
    observations
        .iter()
        .filter(move |o| o.at_s >= sigterm && o.at_s < exit)
}

fn readiness(config: &CheckConfig, m: &Measurements) -> Judged {
    let start = &m.start;
    let since_start = |at: Option<f64>| human(at.unwrap_or(0.0) - start.started_s.unwrap_or(0.0));
    let path = &m.paths.readiness;
    match (&start.end, start.ready_s) {
        (StartEnd::Ready, Some(ready)) => match start.unready_status {
            Some(status) => (
                Verdict::Pass,
                format!(
                    "{path} answered {status} while warming up, then 200 {} after start",
                    since_start(Some(ready))
                ),
                "",
            ),
            None => (
                Verdict::Info,
                format!(
                    "{path} answered 200 from its first answer, {} after start: no warm-up seen",
                    since_start(Some(ready))
                ),
                "if the app warms up (caches, models, connections), answer 503 on readiness until \
                 it is warm",
            ),
        },
        (StartEnd::Exited { how }, _) => (
            Verdict::Fail,
            format!("exited ({how}) before {path} answered 200"),
            "answer 200 on readiness once the app can serve, and keep running",
        ),
        _ => (
            Verdict::Fail,
            match start.unready_status {
                Some(status) => format!(
                    "{path} still answered {status} {} after start",
                    human_duration(config.start_timeout)
                ),
                None => format!(
                    "{path} gave no answer within {}",
                    human_duration(config.start_timeout)
                ),
            },
            "answer 200 on readiness once the app can serve (within --start-timeout)",
        ),
    }
}

fn liveness(m: &Measurements) -> Judged {
    let (termination, sigterm) = match terminated(m) {
        Ok(found) => found,
        Err(skip) => return skip,
    };
    let path = &m.paths.liveness;
    let answers: Vec<&Observation> = while_running(&termination.liveness, termination, sigterm)
        .filter(|o| matches!(o.reply, super::measurements::Reply::Status { .. }))
        .collect();
    let fix = "keep liveness 200 for as long as the process runs: only readiness says it is \
               draining (a failing liveness gets the pod killed mid-drain)";
    if let Some(failing) = answers.iter().find(|o| !o.reply.is_success()) {
        return (
            Verdict::Fail,
            format!(
                "{path} {} {} after SIGTERM, while the app was still running",
                failing.reply,
                human(failing.at_s - sigterm)
            ),
            fix,
        );
    }
    match answers.last() {
        Some(last) => (
            Verdict::Pass,
            format!(
                "{path} answered 200 through the drain: {} answers until {} after SIGTERM",
                answers.len(),
                human(last.at_s - sigterm)
            ),
            "",
        ),
        None => skipped(format!(
            "no drain to check: the app stopped accepting connections {} after SIGTERM",
            human(termination.accepting_after_sigterm_s().unwrap_or(0.0))
        )),
    }
}

fn readiness_fails(config: &CheckConfig, m: &Measurements) -> Judged {
    let (termination, sigterm) = match terminated(m) {
        Ok(found) => found,
        Err(skip) => return skip,
    };
    let period = config.readiness_period.as_secs_f64();
    let path = &m.paths.readiness;
    let failure = Termination::first_failure_after_sigterm(&termination.readiness, sigterm);
    let killed = |at: f64| termination.sigkill_s.is_some_and(|kill| at >= kill - 0.05);
    let (at, what) = match (failure, termination.exit_s) {
        (Some(seen), Some(exit)) if seen.at_s > exit => (exit, "the process exited".to_owned()),
        (Some(seen), _) if killed(seen.at_s) => (
            seen.at_s,
            format!("{path} answered 200 until the SIGKILL at the end of the grace period,"),
        ),
        (Some(seen), _) if seen.reply.is_refused() => (
            seen.at_s,
            format!("{path} refused the connection (the app had stopped listening)"),
        ),
        (Some(seen), _) => (seen.at_s, format!("{path} {}", seen.reply)),
        (None, Some(exit)) => (exit, "the process exited".to_owned()),
        (None, None) => {
            return (
                Verdict::Fail,
                format!("{path} never failed after SIGTERM"),
                "on SIGTERM, answer 503 on readiness at once",
            );
        }
    };
    let after = at - sigterm;
    let verdict = if after <= period {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    (
        verdict,
        format!(
            "{what} {} after SIGTERM (probe period {})",
            human(after),
            human(period)
        ),
        "on SIGTERM, answer 503 on readiness at once (and go on serving everything else)",
    )
}

fn propagation(config: &CheckConfig, m: &Measurements) -> Judged {
    let (termination, sigterm) = match terminated(m) {
        Ok(found) => found,
        Err(skip) => return skip,
    };
    let Some(traffic) = &m.traffic else {
        return skip_no_traffic();
    };
    if traffic.sent == 0 {
        return skip_no_traffic();
    }
    let Some(removal) = termination.removal_s else {
        return skipped("the endpoint removal never reached the router");
    };
    let window = removal - sigterm;
    let pre_stop = if config.pre_stop.is_zero() {
        "no preStop".to_owned()
    } else {
        format!("preStop {}", human_duration(config.pre_stop))
    };
    if traffic.failed > 0 {
        let kinds: Vec<String> = traffic
            .failed_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        return (
            Verdict::Fail,
            format!(
                "with {pre_stop}: {} requests the router sent it failed ({}) in the {} between \
                 SIGTERM and the router learning it was gone, at {} requests/s over 2 replicas: \
                 the cost of deploying it as it is",
                traffic.failed,
                kinds.join(", "),
                human(window.max(0.0)),
                traffic.rate
            ),
            "keep serving for at least the propagation delay after SIGTERM (a drain delay), or \
             set the preStop sleep below",
        );
    }
    if window <= 0.0 {
        return (
            Verdict::Pass,
            format!(
                "with {pre_stop}: the router stopped sending it requests {} before SIGTERM",
                human(-window)
            ),
            "",
        );
    }
    (
        Verdict::Pass,
        format!(
            "with {pre_stop}: the router sent it requests for {} after SIGTERM; {} answered, none \
             failed",
            human(window),
            traffic.answered_after_sigterm
        ),
        "",
    )
}

fn skip_no_traffic() -> Judged {
    skipped("no traffic reached the router")
}

fn in_flight(config: &CheckConfig, m: &Measurements) -> Judged {
    let Some(path) = &config.slow_path else {
        return skipped("no --slow-path given: nothing slow to hold in flight");
    };
    let (termination, sigterm) = match terminated(m) {
        Ok(found) => found,
        Err(skip) => return skip,
    };
    let Some(slow) = &m.slow else {
        return skipped(format!("{path} was not sent"));
    };
    let fix = "on SIGTERM, let requests in flight finish before the process exits (within the \
               grace period)";
    let after = human(slow.ended_s - sigterm);
    match &slow.outcome {
        SlowOutcome::Answered { status } if slow.ended_s < sigterm => skipped(format!(
            "{path} answered {status} {} before SIGTERM: give a slower --slow-path",
            human(sigterm - slow.ended_s)
        )),
        SlowOutcome::Answered { status } if (200..400).contains(status) => (
            Verdict::Pass,
            format!(
                "{path}, sent {} before SIGTERM, answered {status} {after} after it",
                human(sigterm - slow.sent_s)
            ),
            "",
        ),
        SlowOutcome::Answered { status } => (
            Verdict::Fail,
            format!("{path}, in flight at SIGTERM, answered {status} {after} after it"),
            fix,
        ),
        SlowOutcome::Cut { error } => {
            let by_sigkill = termination
                .sigkill_s
                .is_some_and(|kill| slow.ended_s >= kill - 0.05);
            let at_exit = termination
                .exit_s
                .is_some_and(|exit| slow.ended_s >= exit - 0.1);
            let by = if by_sigkill {
                "by the SIGKILL at the end of the grace period"
            } else if at_exit {
                "as the process exited"
            } else {
                "by the app"
            };
            (
                Verdict::Fail,
                format!("{path}, in flight at SIGTERM, was cut {by}, {after} after it ({error})"),
                fix,
            )
        }
        SlowOutcome::TimedOut => (
            Verdict::Fail,
            format!("{path}, in flight at SIGTERM, got no answer ({after} after it)"),
            fix,
        ),
    }
}

fn keep_alive(m: &Measurements) -> Judged {
    let (termination, sigterm) = match terminated(m) {
        Ok(found) => found,
        Err(skip) => return skip,
    };
    let Some(keep_alive) = &m.keep_alive else {
        return skipped(NEVER_READY);
    };
    let when = |at: f64| {
        if at < sigterm {
            format!("{} before SIGTERM", human(sigterm - at))
        } else {
            format!("{} after SIGTERM", human(at - sigterm))
        }
    };
    let answers = match keep_alive.answers {
        1 => "1 answer".to_owned(),
        n => format!("{n} answers"),
    };
    match &keep_alive.end {
        KeepAliveEnd::NotKeptAlive => {
            skipped("the app keeps no connection alive (its first answer closed it)")
        }
        KeepAliveEnd::CouldNotOpen { error } => {
            skipped(format!("could not open a keep-alive connection: {error}"))
        }
        KeepAliveEnd::ToldToClose { at_s } => (
            Verdict::Pass,
            format!(
                "after {answers} on it, the answer {} said Connection: close",
                when(*at_s)
            ),
            "",
        ),
        KeepAliveEnd::ClosedIdle { at_s } => {
            let exiting = termination.exit_s.is_some_and(|exit| *at_s >= exit - 0.15);
            (
                Verdict::Pass,
                format!(
                    "after {answers} on it, closed between requests {}{}",
                    when(*at_s),
                    if exiting {
                        " (as the process exited)"
                    } else {
                        ""
                    }
                ),
                "",
            )
        }
        KeepAliveEnd::BrokenUnderRequest { at_s, error } => (
            Verdict::Fail,
            format!(
                "after {answers} on it, a request sent {} broke ({error})",
                when(*at_s)
            ),
            "during the drain, answer with `Connection: close` and close idle keep-alive \
             connections only between requests",
        ),
        KeepAliveEnd::StillOpen => skipped("the connection was still open when the check ended"),
    }
}

fn exit(config: &CheckConfig, m: &Measurements) -> Judged {
    let (termination, sigterm) = match terminated(m) {
        Ok(found) => found,
        Err(skip) => return skip,
    };
    let grace = config.grace_period.as_secs_f64();
    let handle = "handle SIGTERM: fail readiness, serve through the drain delay, finish requests \
                  in flight, then exit 0, all within the grace period";
    let (Some(exit_s), Some(how)) = (termination.exit_s, &termination.exit) else {
        return (Verdict::Fail, "the process never exited".to_owned(), handle);
    };
    let after = human(exit_s - sigterm);
    if let Some(kill) = termination.sigkill_s {
        return (
            Verdict::Fail,
            format!(
                "SIGKILLed at the end of the grace period ({}), {} after SIGTERM; cut: {}",
                human(grace),
                human(kill - sigterm),
                cut_by_sigkill(m, kill)
            ),
            handle,
        );
    }
    let left = grace - (exit_s - termination.terminating_s);
    match how {
        PodExit::Code(0) => (
            Verdict::Pass,
            format!(
                "exited with code 0 {after} after SIGTERM, {} before the grace period's end",
                human(left)
            ),
            "",
        ),
        PodExit::Code(code) => (
            Verdict::Fail,
            format!(
                "exited with code {code} {after} after SIGTERM{}",
                if *code == 143 {
                    " (128 + 15: the runtime's default exit on SIGTERM)"
                } else {
                    ""
                }
            ),
            "exit 0 after a clean drain: Kubernetes counts any other code as an error",
        ),
        other => (
            Verdict::Fail,
            format!("ended by {other} {after} after SIGTERM: no shutdown of its own"),
            handle,
        ),
    }
}

/// What the SIGKILL at `kill` cut: the measuring requests still open then.
fn cut_by_sigkill(m: &Measurements, kill: f64) -> String {
    let mut cut = Vec::new();
    if let Some(slow) = &m.slow
        && matches!(slow.outcome, SlowOutcome::Cut { .. })
        && slow.ended_s >= kill - 0.05
    {
        cut.push(format!("{} (in flight)", slow.path));
    }
    if let Some(keep_alive) = &m.keep_alive
        && let KeepAliveEnd::BrokenUnderRequest { at_s, .. } = keep_alive.end
        && at_s >= kill - 0.5
    {
        cut.push("a keep-alive request".to_owned());
    }
    if cut.is_empty() {
        "no request of the check's was in flight".to_owned()
    } else {
        format!("{} request(s): {}", cut.len(), cut.join(", "))
    }
}

fn restart(m: &Measurements) -> Judged {
    if m.termination.is_none() {
        return skipped(NEVER_READY);
    }
    let Some(restart) = &m.restart else {
        return skipped("the first process never exited");
    };
    let start = &restart.start;
    let fix = "listen with SO_REUSEADDR (most servers do): a restarted container gets the same \
               address and port at once";
    let exit_s = m
        .termination
        .as_ref()
        .and_then(|t| t.exit_s)
        .unwrap_or_default();
    let started = start.started_s.unwrap_or(exit_s);
    match (start.first_answer_s, &start.end) {
        (Some(answer), _) => (
            Verdict::Pass,
            format!(
                "a new process, started {} after the old one exited, answered on port {} {} later",
                human(started - exit_s),
                restart.port,
                human(answer - started)
            ),
            "",
        ),
        (None, StartEnd::Exited { how }) => (
            Verdict::Fail,
            format!(
                "a new process on port {} exited ({how}) without answering: {}",
                restart.port,
                restart
                    .log_tail
                    .as_deref()
                    .and_then(|tail| tail.lines().last())
                    .unwrap_or("no output")
            ),
            fix,
        ),
        (None, _) => (
            Verdict::Fail,
            format!("a new process on port {} did not answer", restart.port),
            fix,
        ),
    }
}

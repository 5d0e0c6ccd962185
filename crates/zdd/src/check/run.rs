//! One check run on the local platform: the app beside a peer replica, its start, traffic through
//! the router, its termination by a scale to zero (the supervisor's preStop, SIGTERM and SIGKILL
//! at the grace period; the endpoint removal reaching the router after the propagation delay),
//! then a new process of the same command on the same port. Only measures: the verdicts are
//! `verdicts`' business.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::config::{CheckConfig, ProbePath};
use super::measurements::{
    KeepAlive, Measurements, Paths, Reply, Restart, SlowRequest, Start, StartEnd, Termination,
    Traffic,
};
use super::observe::{
    KeepAliveClient, POLL_EVERY, Poller, now_s, probe_once, send_slow_request, wait_for_event,
};
use crate::events::{Event, EventLog, Record};
use crate::model::{ProbeSpec, VersionTemplate};
use crate::platform::Platform;
use crate::platform::local::{LocalConfig, LocalPlatform};

const APP: &str = "app";
const PEER: &str = "peer";
/// The new process of check 8 is a version of its own, so that its answers are never counted as
/// the terminated app's.
const RESTART: &str = "restart";
/// With no preStop the slow request is sent this long before the scale to zero (with one, this
/// long before SIGTERM), so that the app has it in hand when SIGTERM comes.
const SLOW_LEAD: Duration = Duration::from_millis(300);
/// The kubelet's extension of the grace period when preStop used it all.
const GRACE_EXTENSION: Duration = Duration::from_secs(2);
/// Slack on the waits that the platform's own timers bound.
const SLACK: Duration = Duration::from_secs(5);
/// After the exit, how long the keep-alive client goes on (more than its pace, 100 ms).
const KEEP_ALIVE_SETTLE: Duration = Duration::from_millis(250);
/// How long the background traffic may take to reach both replicas.
const TRAFFIC_WARM_UP: Duration = Duration::from_secs(3);

/// Why a check ended without a report.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Nothing could be checked because of what was asked (exit 2).
    #[error("{0}")]
    Usage(String),
    #[error("interrupted")]
    Interrupted,
    /// The check itself could not run (exit 1).
    #[error("{0}")]
    Failed(String),
}

/// What a run produced.
pub struct CheckRun {
    pub measurements: Measurements,
    pub events: Vec<Record>,
}

enum Stop {
    Check(CheckError),
    /// The default readiness path answered 404: start again on `/`.
    ReadinessNotFound,
}

impl From<CheckError> for Stop {
    fn from(err: CheckError) -> Self {
        Stop::Check(err)
    }
}

fn failed(what: &str) -> impl FnOnce(crate::platform::PlatformError) -> Stop + '_ {
    move |err| Stop::Check(CheckError::Failed(format!("{what}: {err}")))
}

/// Runs the check; the platform is shut down (nothing left running) however it ends, also when
/// `cancel` fires.
pub async fn run(config: &CheckConfig, cancel: CancellationToken) -> Result<CheckRun, CheckError> {
    let mut readiness = config.readiness.clone();
    let mut notes = Vec::new();
    loop {
        let events = open_events(config)?;
        let mut local = LocalConfig::new(&config.run_dir);
        local.propagation_delay = config.propagation_delay;
        let mut platform = LocalPlatform::start(local, events.clone())
            .await
            .map_err(|err| CheckError::Failed(format!("cannot start the local platform: {err}")))?;
        let measured = tokio::select! {
            biased;
            () = cancel.cancelled() => Err(Stop::Check(CheckError::Interrupted)),
            measured = measure(&mut platform, config, &readiness, &events) => measured,
        };
        if let Err(err) = platform.shutdown().await {
            tracing::warn!("the local platform did not shut down cleanly: {err}");
        }
        match measured {
            Ok(mut measurements) => {
                notes.append(&mut measurements.paths.notes);
                measurements.paths.notes = notes;
                return Ok(CheckRun {
                    measurements,
                    events: events.snapshot(),
                });
            }
            Err(Stop::ReadinessNotFound) => {
                notes.push(format!(
                    "readiness: {} answered 404, so readiness is read on / (--readiness-path \
                     names the app's own)",
                    readiness.path
                ));
                readiness = ProbePath::default_to("/");
            }
            Err(Stop::Check(err)) => return Err(err),
        }
    }
}

fn open_events(config: &CheckConfig) -> Result<EventLog, CheckError> {
    std::fs::create_dir_all(&config.run_dir)
        .and_then(|()| std::fs::File::create(config.run_dir.join("events.jsonl")))
        .map(|file| EventLog::with_sink(Instant::now(), Box::new(file)))
        .map_err(|err| {
            CheckError::Usage(format!(
                "cannot write in the run directory {}: {err}",
                config.run_dir.display()
            ))
        })
}

async fn measure(
    platform: &mut LocalPlatform,
    config: &CheckConfig,
    readiness: &ProbePath,
    events: &EventLog,
) -> Result<Measurements, Stop> {
    let origin = events.origin();
    let app = app_template(config, APP, &readiness.path);
    platform
        .scale(&peer_template(config), 1)
        .await
        .map_err(failed("cannot start the peer replica"))?;
    platform
        .scale(&app, 1)
        .await
        .map_err(failed("cannot start the app"))?;
    let pod = format!("{APP}-1");
    let port = pod_port(platform, &pod).await?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let start = watch_start(
        events,
        &pod,
        addr,
        &readiness.path,
        config.start_timeout,
        true,
    )
    .await;
    refuse_unusable_start(config, readiness, &start, port, &pod)?;
    let paths = choose_paths(config, readiness, addr, origin).await?;
    let mut measurements = Measurements {
        paths,
        start,
        ..Measurements::default()
    };
    if measurements.start.end != StartEnd::Ready {
        return Ok(measurements);
    }

    for (version, pod) in [(APP, pod.clone()), (PEER, format!("{PEER}-1"))] {
        wait_published(events, version, &pod, config.propagation_delay + SLACK)
            .await
            .ok_or_else(|| CheckError::Failed(format!("the router never got {pod}'s endpoint")))?;
    }
    let probe = start_traffic(platform, config, origin).await?;
    let keep_alive = KeepAliveClient::start(addr, config.traffic_path.clone(), origin).await;
    let readiness_poller = Poller::start(addr, measurements.paths.readiness.clone(), origin);
    let liveness_poller = Poller::start(addr, measurements.paths.liveness.clone(), origin);

    // The termination: the slow request in flight when SIGTERM comes.
    let slow_limit = config.pre_stop + config.grace_period + GRACE_EXTENSION + SLACK;
    let mut slow = None;
    if let Some(path) = &config.slow_path
        && config.pre_stop.is_zero()
    {
        slow = Some(send_slow_request(addr, path.clone(), origin, slow_limit));
        tokio::time::sleep(SLOW_LEAD).await;
    }
    let terminating_s = now_s(origin);
    platform
        .scale(&app, 0)
        .await
        .map_err(failed("cannot scale the app to 0"))?;
    if let Some(path) = &config.slow_path
        && !config.pre_stop.is_zero()
    {
        tokio::time::sleep(config.pre_stop.saturating_sub(SLOW_LEAD)).await;
        slow = Some(send_slow_request(addr, path.clone(), origin, slow_limit));
    }
    let exit_bound = config.pre_stop + config.grace_period + GRACE_EXTENSION + SLACK;
    let exit = wait_for_event(events, exit_bound, |record| match &record.event {
        Event::PodExited { pod: exited, how } if *exited == pod => Some((record.t_s, how.clone())),
        _ => None,
    })
    .await;
    let readiness_seen = readiness_poller.finish().await;
    let liveness_seen = liveness_poller.finish().await;

    let removal_s = wait_for_event(
        events,
        config.propagation_delay + SLACK,
        |record| match &record.event {
            Event::EndpointsPublished { version, pods }
                if version == APP && pods.is_empty() && record.t_s >= terminating_s =>
            {
                Some(record.t_s)
            }
            _ => None,
        },
    )
    .await;
    // The keep-alive client sees a close within its pace; the new process cannot touch the old
    // connection.
    tokio::time::sleep(KEEP_ALIVE_SETTLE).await;
    let keep_alive: KeepAlive = keep_alive.finish().await;
    probe.stop();
    let report = probe.finish().await;

    let slow: Option<SlowRequest> = match slow {
        Some(task) => task.join().await,
        None => None,
    };
    let snapshot = events.snapshot();
    let signalled = |signal: &str| {
        snapshot.iter().find_map(|record| match &record.event {
            Event::PodSignalled { pod: to, signal: s } if *to == pod && s == signal => {
                Some(record.t_s)
            }
            _ => None,
        })
    };
    let sigterm_s = signalled("SIGTERM");
    let termination = Termination {
        terminating_s,
        sigterm_s,
        sigkill_s: signalled("SIGKILL"),
        exit_s: exit.as_ref().map(|(t_s, _)| *t_s),
        exit: exit.map(|(_, how)| how),
        removal_s,
        readiness: readiness_seen,
        liveness: liveness_seen,
    };
    measurements.traffic = Some(traffic(&report, sigterm_s.unwrap_or(terminating_s)));
    measurements.termination = Some(termination);
    measurements.slow = slow;
    measurements.keep_alive = Some(keep_alive);
    // Check 8, once the router no longer sends to the old process's address (the new process
    // would answer for it).
    if measurements
        .termination
        .as_ref()
        .is_some_and(|t| t.exit.is_some())
    {
        let readiness = measurements.paths.readiness.clone();
        measurements.restart = Some(restart(platform, config, events, port, &readiness).await?);
    }
    Ok(measurements)
}

/// A new process of the same command on `port`, which the old one has just left.
async fn restart(
    platform: &mut LocalPlatform,
    config: &CheckConfig,
    events: &EventLog,
    port: u16,
    readiness_path: &str,
) -> Result<Restart, Stop> {
    platform.pin_next_port(RESTART, port);
    platform
        .scale(&app_template(config, RESTART, readiness_path), 1)
        .await
        .map_err(failed("cannot start the new process"))?;
    let pod = format!("{RESTART}-1");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = watch_start(
        events,
        &pod,
        addr,
        readiness_path,
        config.start_timeout,
        false,
    )
    .await;
    let log_tail = start
        .first_answer_s
        .is_none()
        .then(|| log_tail(config, &pod));
    Ok(Restart {
        port,
        start,
        log_tail,
    })
}

/// The app as the supervisor runs it (no liveness probe: its answers are watched, not acted on).
fn app_template(config: &CheckConfig, name: &str, readiness_path: &str) -> VersionTemplate {
    VersionTemplate {
        name: name.to_owned(),
        command: config.command.clone(),
        image: None,
        env: config.env.clone(),
        readiness: ProbeSpec {
            period: config.readiness_period,
            ..ProbeSpec::readiness(readiness_path)
        },
        liveness: None,
        pre_stop_sleep: config.pre_stop,
        termination_grace_period: config.grace_period,
        min_ready: Duration::ZERO,
        scheduling: Default::default(),
    }
}

/// The reference service, whatever zdd's environment says it should do.
fn peer_template(config: &CheckConfig) -> VersionTemplate {
    let env = [
        ("APP_VERSION", PEER),
        ("STARTUP_DELAY", "0s"),
        ("DRAIN_DELAY", "0s"),
        ("READINESS_PATH", "/readyz"),
        ("LIVENESS_PATH", "/healthz"),
    ];
    VersionTemplate {
        name: PEER.to_owned(),
        command: config.peer_command.clone(),
        image: None,
        env: env
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect::<BTreeMap<_, _>>(),
        readiness: ProbeSpec {
            period: Duration::from_millis(100),
            ..ProbeSpec::readiness("/readyz")
        },
        liveness: None,
        pre_stop_sleep: Duration::ZERO,
        termination_grace_period: GRACE_EXTENSION,
        min_ready: Duration::ZERO,
        scheduling: Default::default(),
    }
}

async fn pod_port(platform: &mut LocalPlatform, pod: &str) -> Result<u16, Stop> {
    let status = platform
        .status()
        .await
        .map_err(failed("cannot read the replicas"))?;
    status
        .pods
        .iter()
        .find(|p| p.name == pod)
        .and_then(|p| p.port)
        .ok_or_else(|| Stop::Check(CheckError::Failed(format!("{pod} has no port"))))
}

/// Watches a new process from `PodStarted`: the readiness path every [`POLL_EVERY`] until it
/// answers 200–399 (or, with `until_ready` false, until it answers at all).
async fn watch_start(
    events: &EventLog,
    pod: &str,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    until_ready: bool,
) -> Start {
    let origin = events.origin();
    let deadline = Instant::now() + timeout;
    let mut start = Start::default();
    let began = wait_for_event(events, timeout, |record| match &record.event {
        Event::PodStarted { pod: p } if p == pod => Some(Ok(record.t_s)),
        Event::PodFailedToStart { pod: p, error } if p == pod => Some(Err(error.clone())),
        _ => None,
    })
    .await;
    match began {
        Some(Ok(t_s)) => start.started_s = Some(t_s),
        Some(Err(error)) => {
            start.end = StartEnd::FailedToStart { error };
            return start;
        }
        None => return start,
    }
    let exited = |events: &EventLog| {
        events
            .snapshot()
            .iter()
            .find_map(|record| match &record.event {
                Event::PodExited { pod: p, how } if p == pod => Some(how.clone()),
                _ => None,
            })
    };
    while Instant::now() < deadline {
        let seen = probe_once(addr, path, origin).await;
        if let Reply::Status { status } = seen.reply {
            start.first_answer_s.get_or_insert(seen.at_s);
            if status == 404 {
                start.end = StartEnd::PathNotFound;
                return start;
            }
            if seen.reply.is_success() || !until_ready {
                start.ready_s = seen.reply.is_success().then_some(seen.at_s);
                start.end = StartEnd::Ready;
                return start;
            }
            start.unready_status.get_or_insert(status);
        }
        if let Some(how) = exited(events) {
            start.end = StartEnd::Exited { how };
            return start;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    start
}

/// A start that leaves nothing to check is a usage error (exit 2), with what to do about it.
fn refuse_unusable_start(
    config: &CheckConfig,
    readiness: &ProbePath,
    start: &Start,
    port: u16,
    pod: &str,
) -> Result<(), Stop> {
    let command = config.command.join(" ");
    let usage = |message: String| Err(Stop::Check(CheckError::Usage(message)));
    match &start.end {
        StartEnd::PathNotFound if readiness.falls_back() => Err(Stop::ReadinessNotFound),
        StartEnd::PathNotFound => usage(format!(
            "the readiness path {} answers 404: give the path the app answers its readiness on \
             (--readiness-path)",
            readiness.path
        )),
        StartEnd::FailedToStart { error } => usage(format!("cannot start `{command}`: {error}")),
        StartEnd::Exited { how } if start.first_answer_s.is_none() => usage(format!(
            "`{command}` exited ({how}) before it answered on port {port}; its last output:\n{}",
            log_tail(config, pod)
        )),
        StartEnd::TimedOut if start.first_answer_s.is_none() => usage(format!(
            "nothing answered on port {port} within {}: the app must listen on 127.0.0.1 (BIND) \
             at the port in $PORT (or {{port}} in its arguments); its last output:\n{}",
            humantime::format_duration(config.start_timeout),
            log_tail(config, pod)
        )),
        _ => Ok(()),
    }
}

/// The liveness path in use: a default one that answers 404 gives way to `/`; a given one that
/// does is a usage error.
async fn choose_paths(
    config: &CheckConfig,
    readiness: &ProbePath,
    addr: SocketAddr,
    origin: Instant,
) -> Result<Paths, Stop> {
    let mut paths = Paths {
        readiness: readiness.path.clone(),
        liveness: config.liveness.path.clone(),
        notes: Vec::new(),
    };
    let seen = probe_once(addr, &config.liveness.path, origin).await;
    if seen.reply == (Reply::Status { status: 404 }) {
        if !config.liveness.falls_back() {
            return Err(Stop::Check(CheckError::Usage(format!(
                "the liveness path {} answers 404: give the path the app answers its liveness on \
                 (--liveness-path)",
                config.liveness.path
            ))));
        }
        paths.notes.push(format!(
            "liveness: {} answered 404, so liveness is read on / (--liveness-path names the \
             app's own)",
            config.liveness.path
        ));
        paths.liveness = "/".to_owned();
    }
    Ok(paths)
}

/// Waits until the router serves `pod` as an endpoint of `version`.
async fn wait_published(
    events: &EventLog,
    version: &str,
    pod: &str,
    timeout: Duration,
) -> Option<()> {
    wait_for_event(events, timeout, |record| match &record.event {
        Event::EndpointsPublished { version: v, pods }
            if v == version && pods.iter().any(|p| p == pod) =>
        {
            Some(())
        }
        _ => None,
    })
    .await
}

/// The probe's open-loop traffic through the router, once it reaches both replicas (or after
/// [`TRAFFIC_WARM_UP`], when the app's answers to it are not 200–399).
async fn start_traffic(
    platform: &LocalPlatform,
    config: &CheckConfig,
    origin: Instant,
) -> Result<zdd_probe::ProbeHandle, Stop> {
    let url = format!("{}{}", platform.main_url(), config.traffic_path);
    let uri: http::Uri = url
        .parse()
        .map_err(|err| CheckError::Usage(format!("bad traffic path {url}: {err}")))?;
    let mut probe_config = zdd_probe::ProbeConfig::new(uri);
    probe_config.rate = config.rate;
    probe_config.connections = (config.rate as usize * 2).max(64);
    probe_config.version_header = "X-Zdd-Version".into();
    probe_config.origin = Some(origin);
    let probe = zdd_probe::start(probe_config)
        .map_err(|err| CheckError::Failed(format!("cannot start the traffic: {err}")))?;
    let deadline = Instant::now() + TRAFFIC_WARM_UP;
    while Instant::now() < deadline {
        let seen = probe.progress().by_version;
        if seen.contains_key(APP) && seen.contains_key(PEER) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(probe)
}

/// The traffic's outcome, attributed to the app: every failure (a 4xx is an answer) and the
/// app's answers from the 100 ms bucket that holds SIGTERM on.
fn traffic(report: &zdd_probe::Report, sigterm_s: f64) -> Traffic {
    let answered_after_sigterm = report
        .timeline
        .iter()
        .filter(|bucket| bucket.t_s + report.bucket_s > sigterm_s)
        .filter_map(|bucket| bucket.by_version.get(APP))
        .sum();
    let failed_by_kind: BTreeMap<String, u64> = report
        .failed_by_kind
        .iter()
        .filter(|(kind, count)| **count > 0 && kind.as_str() != "http_4xx")
        .map(|(kind, count)| (kind.clone(), *count))
        .collect();
    Traffic {
        rate: report.rate,
        sent: report.total,
        answered_after_sigterm,
        failed: failed_by_kind.values().sum(),
        failed_by_kind,
    }
}

/// The last lines of a replica's output.
fn log_tail(config: &CheckConfig, pod: &str) -> String {
    let path = config.run_dir.join("pods").join(format!("{pod}.log"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("\n");
    if tail.trim().is_empty() {
        format!("(nothing in {})", path.display())
    } else {
        tail
    }
}

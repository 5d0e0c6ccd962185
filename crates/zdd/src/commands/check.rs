//! `zdd check [OPTIONS] -- COMMAND [ARGS...]` (or `-f SPEC`): is the service safe to roll?
//!
//! Exit codes: 0 no check failed, 1 a check failed (or the check was interrupted, or could not
//! run), 2 bad usage: no command, a bad flag or spec, a program that cannot start, an app that
//! never listens on its port, a given probe path that answers 404.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::check::{CheckConfig, CheckError, CheckReport, ProbePath, render_html, render_text};
use crate::model::ProbeSpec;
use crate::rollout::session::{on_signals, resolve_self_command};
use crate::spec::Spec;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Take the app from a rollout spec: the `to` version's command and environment, the
    /// readiness probe, liveness path, preStop, grace period, propagation delay and traffic.
    /// Flags given as well win.
    #[arg(short = 'f', long = "file", value_name = "SPEC")]
    pub file: Option<PathBuf>,
    /// Where readiness answers (default /readyz; / with a note when that answers 404).
    #[arg(long, value_name = "PATH")]
    pub readiness_path: Option<String>,
    /// Where liveness answers (default /healthz; / with a note when that answers 404).
    #[arg(long, value_name = "PATH")]
    pub liveness_path: Option<String>,
    /// A slow request to hold in flight across SIGTERM, for example '/work?ms=2000' (without it,
    /// check 5 is skipped).
    #[arg(long, value_name = "PATH")]
    pub slow_path: Option<String>,
    /// How late the endpoint removal reaches the router [default: 1s].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub propagation_delay: Option<Duration>,
    /// The preStop sleep to assume [default: none].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub pre_stop: Option<Duration>,
    /// The terminationGracePeriod to assume, counted from the start of preStop [default: 30s].
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub grace_period: Option<Duration>,
    /// Background requests per second through the router [default: 100].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rate: Option<u32>,
    /// How long the app may take to listen and turn ready.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION", default_value = "30s")]
    pub start_timeout: Duration,
    /// Replica logs and the events file.
    #[arg(long, value_name = "DIR", default_value = "zdd-runs/check")]
    pub run_dir: PathBuf,
    /// Write the report (checks, recommendation, measurements, events) as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the report as one self-contained HTML page.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// The app's program and arguments, after `--`; `{port}` is replaced by its port, which is
    /// also in $PORT.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let config = match config(&args) {
        Ok(config) => config,
        Err(usage) => {
            eprintln!("zdd check: {usage}");
            return Ok(ExitCode::from(2));
        }
    };
    let cancel = CancellationToken::new();
    // The app and everything zdd started are stopped and reaped; a second signal exits at once.
    let stop = cancel.clone();
    let signals = on_signals("stopping the app", move |_| stop.cancel())?;
    let result = crate::check::run(&config, cancel).await;
    signals.abort();
    let run = match result {
        Ok(run) => run,
        Err(CheckError::Usage(message)) => {
            eprintln!("zdd check: {message}");
            return Ok(ExitCode::from(2));
        }
        Err(CheckError::Interrupted) => {
            eprintln!("zdd check: interrupted; the app and everything zdd started are stopped");
            return Ok(ExitCode::from(1));
        }
        Err(CheckError::Failed(message)) => anyhow::bail!("the check could not run: {message}"),
    };
    let report = CheckReport::new(&config, run);
    print!("{}", render_text(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, render_html(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The check to run, from the flags (and the spec); a usage error says what is wrong.
fn config(args: &CheckArgs) -> Result<CheckConfig, String> {
    let exe = std::env::current_exe().map_err(|err| format!("cannot find zdd itself: {err}"))?;
    let mut config = CheckConfig {
        command: args.command.clone(),
        env: Default::default(),
        readiness: ProbePath::default_to("/readyz"),
        liveness: ProbePath::default_to("/healthz"),
        readiness_period: ProbeSpec::readiness("/").period,
        traffic_path: "/".to_owned(),
        slow_path: args.slow_path.clone(),
        propagation_delay: Duration::from_secs(1),
        pre_stop: Duration::ZERO,
        grace_period: Duration::from_secs(30),
        rate: 100,
        start_timeout: args.start_timeout,
        run_dir: args.run_dir.clone(),
        peer_command: vec![exe.to_string_lossy().into_owned(), "serve".to_owned()],
    };
    match (&args.file, args.command.is_empty()) {
        (None, true) => {
            return Err(
                "no command: zdd check [OPTIONS] -- COMMAND [ARGS...], or zdd check -f SPEC".into(),
            );
        }
        (Some(_), false) => {
            return Err("give the app as a command after -- or as -f SPEC, not both".into());
        }
        (Some(file), true) => from_spec(&mut config, file)?,
        (None, false) => {}
    }
    if config
        .command
        .first()
        .is_some_and(|program| program == "zdd")
    {
        config.command[0] = config.peer_command[0].clone();
    }
    if let Some(path) = &args.readiness_path {
        config.readiness = ProbePath::given(path);
    }
    if let Some(path) = &args.liveness_path {
        config.liveness = ProbePath::given(path);
    }
    config.propagation_delay = args.propagation_delay.unwrap_or(config.propagation_delay);
    config.pre_stop = args.pre_stop.unwrap_or(config.pre_stop);
    config.grace_period = args.grace_period.unwrap_or(config.grace_period);
    config.rate = args.rate.unwrap_or(config.rate);
    validate(&config, args)?;
    Ok(config)
}

/// The spec's `to` version (the one about to be rolled out) and what the spec says of the cluster.
fn from_spec(config: &mut CheckConfig, file: &Path) -> Result<(), String> {
    let mut spec = Spec::load(file).map_err(|err| err.to_string())?;
    resolve_self_command(&mut spec).map_err(|err| err.to_string())?;
    // A cluster upgrade has no new version: its one version is what runs.
    let version = spec.to.as_ref().unwrap_or(&spec.from);
    config.command = version.command.clone().unwrap_or(spec.app.command.clone());
    config.env = spec.app.env.clone();
    config.env.extend(version.env.clone());
    config.readiness = ProbePath::given(&spec.app.readiness.path);
    config.readiness_period = spec.app.readiness.period;
    if let Some(liveness) = &spec.app.liveness {
        config.liveness = ProbePath::given(&liveness.path);
    }
    config.traffic_path = spec.traffic.path.clone();
    config.propagation_delay = spec.local.propagation_delay;
    config.pre_stop = spec.app.pre_stop_sleep;
    config.grace_period = spec.app.termination_grace_period;
    config.rate = spec.traffic.rate;
    Ok(())
}

fn validate(config: &CheckConfig, args: &CheckArgs) -> Result<(), String> {
    let paths = [
        ("--readiness-path", Some(&config.readiness.path)),
        ("--liveness-path", Some(&config.liveness.path)),
        ("--slow-path", config.slow_path.as_ref()),
    ];
    for (flag, path) in paths {
        if let Some(path) = path
            && !path.starts_with('/')
        {
            return Err(format!("{flag} {path}: a path starts with /"));
        }
    }
    if config.grace_period <= config.pre_stop {
        return Err(format!(
            "--grace-period ({}) must be longer than --pre-stop ({}): it counts from the start of \
             preStop",
            humantime::format_duration(config.grace_period),
            humantime::format_duration(config.pre_stop)
        ));
    }
    for (flag, file) in [("--json", &args.json), ("--html", &args.html)] {
        if let Some(file) = file {
            let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
            if parent.is_some_and(|dir| !dir.is_dir()) {
                return Err(format!("{flag} {}: no such directory", file.display()));
            }
        }
    }
    Ok(())
}

//! `zdd probe`: a thin command line over the `zdd-probe` library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use zdd_probe::{EventMark, ProbeConfig, Report};

/// Exit code for bad input (the same as clap's for bad flags).
const BAD_INPUT: u8 = 2;

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    // Boxed so the CLI's command enum stays small (clippy::large_enum_variant).
    #[command(flatten)]
    pub options: Box<ProbeOptions>,
}

#[derive(Debug, clap::Args)]
pub struct ProbeOptions {
    /// The URL to send GET requests to (http://host:port/path).
    #[arg(value_parser = parse_url)]
    pub url: http::Uri,

    /// Requests per second, scheduled open-loop whatever the server does.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,

    /// How long to send for (`30s`, `2m`). Without it: until Ctrl-C.
    #[arg(long, value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// Most requests in flight at once; a request that finds all busy fails as `saturated`.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,

    /// Fraction of requests sent on a fresh connection (0 = always reuse keep-alive connections).
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    pub new_connection_ratio: f64,

    /// A request with no complete answer after this long fails as `timeout`.
    #[arg(long, default_value = "2s", value_parser = parse_positive_duration)]
    pub timeout: Duration,

    /// The response header naming the version that answered (then the JSON body's `version`).
    #[arg(long, default_value = "X-Version", value_parser = parse_header_name)]
    pub version_header: String,

    /// A header to read the version from when the app names none (zdd's router: X-Zdd-Version).
    #[arg(long, value_parser = parse_header_name)]
    pub fallback_version_header: Option<String>,

    /// Each worker wakes at most this often; at higher rates it sends small batches (each
    /// request's latency still counts from its own scheduled time). Smaller: more precise, more CPU.
    #[arg(long, default_value = "100us", value_parser = humantime::parse_duration)]
    pub batch_interval: Duration,

    /// Worker threads sending the requests (0: one per 10 000 requests/s, at most one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,

    /// A share of the requests sent with headers of their own and counted apart:
    /// `NAME:SHARE%:Header=value[,Header=value]`, e.g. `testers:20%:X-Canary=always` or
    /// `beta:10%:Cookie=flavour=b`. Repeatable.
    #[arg(long = "segment", value_name = "SEGMENT", value_parser = zdd_probe::Segment::parse)]
    pub segments: Vec<zdd_probe::Segment>,

    /// Failed requests allowed before the run fails (exit 1).
    #[arg(long, default_value_t = 0)]
    pub max_failed: u64,

    /// Write the report as JSON (schema: docs/probe-report.md).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write a self-contained HTML page with charts.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Events to mark on the charts: JSON lines `{"t_s": ..., "label": ...}`, read when the run ends
    /// (a rollout may write them meanwhile).
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
}

pub async fn run(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let args = *args.options;
    // Bad output paths are bad input: say so before sending any traffic.
    for path in [&args.json, &args.html].into_iter().flatten() {
        if let Err(reason) = check_writable_location(path) {
            eprintln!("zdd probe: {reason}");
            return Ok(ExitCode::from(BAD_INPUT));
        }
    }
    let mut config = ProbeConfig::new(args.url.clone());
    config.rate = args.rate;
    config.duration = args.duration;
    config.connections = args.connections as usize;
    config.new_connection_ratio = args.new_connection_ratio;
    config.timeout = args.timeout;
    config.version_header = args.version_header.clone();
    config.fallback_version_header = args.fallback_version_header.clone();
    config.batch_interval = args.batch_interval;
    config.threads = args.threads;
    config.segments = args.segments.clone();
    let probe = match zdd_probe::start(config) {
        Ok(probe) => probe,
        Err(err) => {
            eprintln!("zdd probe: {err}");
            return Ok(ExitCode::from(BAD_INPUT));
        }
    };

    let stopper = probe.stopper();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stopper.stop();
        }
    });
    let live = std::io::stderr().is_terminal();
    let mut ticks = 0u32;
    while probe.is_scheduling() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ticks += 1;
        if live && ticks.is_multiple_of(10) {
            eprintln!("{}", probe.progress());
        }
    }
    let report = probe.finish().await;
    ctrl_c.abort();

    print!("{}", zdd_probe::render_text(&report));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("serializing the report")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        let events = match &args.events {
            Some(events_path) => read_events(events_path),
            None => Vec::new(),
        };
        let title = report.url.clone();
        let page = zdd_probe::render_html(&[(&title, &report, &events)]);
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(verdict(&report, args.max_failed))
}

fn verdict(report: &Report, max_failed: u64) -> ExitCode {
    if report.failed > max_failed {
        eprintln!(
            "zdd probe: {} requests failed, more than --max-failed {max_failed}",
            report.failed
        );
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Reads JSON-lines events; a missing file or a bad line is reported and skipped, since the chart
/// is still worth having without them.
fn read_events(path: &Path) -> Vec<EventMark> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("zdd probe: no events from {}: {err}", path.display());
            return Vec::new();
        }
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .filter_map(|(i, line)| match serde_json::from_str::<EventMark>(line) {
            Ok(event) => Some(event),
            Err(err) => {
                eprintln!(
                    "zdd probe: {}:{}: skipping event: {err}",
                    path.display(),
                    i + 1
                );
                None
            }
        })
        .collect()
}

fn check_writable_location(path: &Path) -> Result<(), String> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(format!(
            "cannot write {}: {} is not a directory",
            path.display(),
            parent.display()
        ));
    }
    if path.is_dir() {
        return Err(format!(
            "cannot write {}: it is a directory",
            path.display()
        ));
    }
    Ok(())
}

fn parse_url(text: &str) -> Result<http::Uri, String> {
    let url: http::Uri = text.parse().map_err(|err| format!("not a URL ({err})"))?;
    match url.scheme_str() {
        Some("http") => {}
        Some(other) => return Err(format!("scheme {other} is not supported, use http://")),
        None => return Err("missing scheme, use http://host:port/path".into()),
    }
    if url.host().is_none_or(str::is_empty) {
        return Err("missing host".into());
    }
    Ok(url)
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration =
        humantime::parse_duration(text).map_err(|err| format!("{err} (e.g. 250ms, 5s)"))?;
    if duration.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(duration)
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    let ratio: f64 = text.parse().map_err(|_| "not a number".to_string())?;
    if !(0.0..=1.0).contains(&ratio) {
        return Err("must be between 0 and 1".into());
    }
    Ok(ratio)
}

fn parse_header_name(text: &str) -> Result<String, String> {
    http::HeaderName::from_bytes(text.as_bytes())
        .map(|_| text.to_string())
        .map_err(|_| "not a valid header name".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(parse_url("http://127.0.0.1:8080/x").is_ok());
        assert!(parse_url("https://example.invalid/").is_err());
        assert!(parse_url("127.0.0.1:8080").is_err());
        assert!(parse_url("http://").is_err());
        assert!(parse_url("not a url").is_err());
    }

    #[test]
    fn durations_are_humantime_and_positive() {
        assert_eq!(
            parse_positive_duration("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert!(parse_positive_duration("0s").is_err());
        assert!(parse_positive_duration("5").is_err());
    }

    #[test]
    fn ratios_stay_within_zero_and_one() {
        assert_eq!(parse_ratio("0.25"), Ok(0.25));
        assert!(parse_ratio("1.5").is_err());
        assert!(parse_ratio("NaN").is_err());
    }
}

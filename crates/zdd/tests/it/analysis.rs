//! Analysis (docs/analysis.md), end to end with `zdd rollout` on the local platform: for each
//! metric kind a bad v2 is rolled back (exit 1, the failed metric named with its value against
//! its threshold) and a good v2 promoted; a real Prometheus scrapes the replicas through
//! `prometheus-targets.json`; an unreachable Prometheus and too few requests are inconclusive,
//! never a pass. The bad versions are the reference service with `ERROR_RATE` or
//! `EXTRA_LATENCY`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use zdd_test_support::run::{text, wait_with_deadline};

use super::support::Run;

const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(90);

/// A canary by weight at 50% of 100 requests/s, no failure budget (only the analysis decides),
/// v2 with `v2_env` (YAML flow mapping entries), and `analysis` (YAML at the top level).
fn spec(name: &str, v2_env: &str, steps: &str, analysis: &str) -> String {
    let strategy = format!("  canary:\n    trafficRouting: weight\n    steps:\n{steps}");
    spec_with(name, v2_env, &strategy, analysis)
}

/// [`spec`] with any strategy (YAML under `strategy:`): the quick reference-service spec of
/// the other rollout tests, 2 replicas, no failure budget.
fn spec_with(name: &str, v2_env: &str, strategy: &str, analysis: &str) -> String {
    let spec = super::support::serve_spec(name, strategy, 2, "null")
        .replace("APP_VERSION: v2 }", &format!("APP_VERSION: v2{v2_env} }}"));
    format!("{spec}{analysis}")
}

/// Background analysis over a 50% step held for 5 s.
const BACKGROUND: &str = "      - setWeight: 50\n      - pause: 5s";
/// Latency on a shared 2-core machine has noisy intervals: one failure is tolerated
/// (`failureLimit: 1`), so the bad version must fail twice, in a step held longer.
const BACKGROUND_LONG: &str = "      - setWeight: 50\n      - pause: 8s";
/// An analysis step at 50%: its measurements must pass.
const STEP: &str = "      - setWeight: 50\n      - analysis: { duration: 4s }";

struct Outcome {
    code: Option<i32>,
    stdout: String,
    json: Value,
}

impl Outcome {
    fn rows(&self, metric: &str) -> Vec<&Value> {
        self.json["analysis"]
            .as_array()
            .expect("analysis rows")
            .iter()
            .filter(|row| row["metric"] == metric)
            .collect()
    }

    fn verdicts(&self, metric: &str) -> Vec<String> {
        self.rows(metric)
            .iter()
            .map(|row| row["verdict"].as_str().unwrap().to_string())
            .collect()
    }

    /// The values of `metric`'s passing measurements.
    fn passed_values(&self, metric: &str) -> Vec<f64> {
        self.rows(metric)
            .iter()
            .filter(|r| r["verdict"] == "pass")
            .map(|r| r["value"].as_f64().unwrap())
            .collect()
    }

    fn assert_promoted(&self, metric: &str) {
        assert_eq!(self.code, Some(0), "{}", self.stdout);
        assert_eq!(self.json["succeeded"], true, "{}", self.stdout);
        let verdicts = self.verdicts(metric);
        assert!(
            verdicts.iter().any(|v| v == "pass") && !verdicts.iter().any(|v| v == "fail"),
            "{metric}: {verdicts:?}\n{}",
            self.stdout
        );
        assert!(self.json["rollback_reason"].is_null());
    }

    /// Rolled back because `metric` failed; returns its failed rows.
    fn assert_rolled_back_by(&self, metric: &str, reason: &str) -> Vec<&Value> {
        assert_eq!(self.code, Some(1), "{}", self.stdout);
        assert_eq!(self.json["succeeded"], false);
        let why = self.json["rollback_reason"].as_str().unwrap_or_default();
        assert!(
            why.contains(&format!("analysis failed: {metric}")) && why.contains(reason),
            "rollback reason: {why}\n{}",
            self.stdout
        );
        assert!(
            self.json["outcome"]
                .as_str()
                .unwrap()
                .starts_with("rolled back"),
            "{}",
            self.json["outcome"]
        );
        // The text report names the metric, its value and the threshold for every interval.
        assert!(
            self.stdout.contains("analysis:") && self.stdout.contains(&format!(" {metric} ")),
            "{}",
            self.stdout
        );
        self.rows(metric)
    }
}

/// The value of the only failed measurement among `rows`, whose threshold is `threshold`.
fn one_failure(rows: &[&Value], threshold: &str) -> f64 {
    let failed: Vec<&&Value> = rows.iter().filter(|r| r["verdict"] == "fail").collect();
    assert_eq!(failed.len(), 1, "{rows:?}");
    assert_eq!(failed[0]["threshold"], threshold);
    failed[0]["value"].as_f64().unwrap()
}

/// `zdd rollout` of `spec` in a fresh directory for `test`.
fn rollout(test: &str, spec: &str) -> Outcome {
    rollout_in(&Run::new(test), "r", spec)
}

fn rollout_in(run: &Run, name: &str, spec: &str) -> Outcome {
    let (child, _) = run.start_rollout(name, spec);
    let output = wait_with_deadline(child, ROLLOUT_TIMEOUT);
    let stdout = text(&output.stdout);
    let json = run.read_json("out.json");
    run.assert_nothing_left();
    Outcome {
        code: output.status.code(),
        stdout: format!("{stdout}\n{}", text(&output.stderr)),
        json,
    }
}

const SUCCESS_RATE: &str = "analysis:
  interval: 2s
  metrics:
    - name: success-rate
      successRate: { min: 99% }
";

#[test]
fn success_rate_rolls_back_a_failing_v2() {
    let out = rollout(
        "analysis-sr-bad",
        &spec("sr", ", ERROR_RATE: \"0.2\"", BACKGROUND, SUCCESS_RATE),
    );
    let rows = out.assert_rolled_back_by("success-rate", "failureLimit 0");
    let value = one_failure(&rows, ">= 99%");
    assert!((0.7..0.9).contains(&value), "20% of v2 fails: {value}");
    // The old version serves again, the new one is gone.
    let events = out.json["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["kind"] == "rolled_back"));
}

#[test]
fn success_rate_promotes_a_good_v2_through_an_analysis_step() {
    let out = rollout("analysis-sr-good", &spec("sr", "", STEP, SUCCESS_RATE));
    out.assert_promoted("success-rate");
    let passed = out.passed_values("success-rate");
    assert!(passed.iter().all(|v| *v >= 0.99), "{passed:?}");
}

/// A shadow: every request copied to v2 for 6 s, judged by the mirror counters only.
const SHADOW: &str = "      - setMirrorRoute: { name: shadow, percentage: 100 }\n      - pause: 6s";
const MIRROR: &str = "analysis:
  interval: 2s
  metrics:
    - name: shadow-errors
      mirror: { successRate: { min: 99% } }
";

/// A shadow v2 answering 500 to a fifth of its copies is rolled back by the mirror metric, while
/// the clients saw none of it: every answer came from v1, none failed.
#[test]
fn mirror_rolls_back_a_failing_shadow_no_client_saw() {
    let out = rollout(
        "analysis-mirror-bad",
        &spec("mirror", ", ERROR_RATE: \"0.2\"", SHADOW, MIRROR),
    );
    let rows = out.assert_rolled_back_by("shadow-errors", "failureLimit 0");
    let value = one_failure(&rows, ">= 99%");
    assert!(
        (0.6..0.95).contains(&value),
        "20% of the copies fail: {value}"
    );
    let why = out.json["rollback_reason"].as_str().unwrap_or_default();
    assert!(why.contains("mirrored copies to v2"), "{why}");
    assert_eq!(out.json["failed"], 0, "{}", out.stdout);
    let v2 = &out.json["by_version"]["v2"];
    assert!(v2.is_null() || v2 == 0, "{}", out.json["by_version"]);
    assert!(out.json["by_version"]["v1"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn mirror_promotes_a_good_shadow() {
    let out = rollout("analysis-mirror-good", &spec("mirror", "", SHADOW, MIRROR));
    out.assert_promoted("shadow-errors");
    let passed = out.passed_values("shadow-errors");
    assert!(passed.iter().all(|v| *v >= 0.99), "{passed:?}");
}

/// A mirror metric without a mirror route has nothing to judge: inconclusive, never a pass, and
/// rolled back past `inconclusiveLimit`.
#[test]
fn mirror_without_a_mirror_route_is_inconclusive() {
    let analysis = MIRROR.replace("interval: 2s", "interval: 2s\n  inconclusiveLimit: 1");
    let out = rollout(
        "analysis-mirror-none",
        &spec("mirror", "", BACKGROUND, &analysis),
    );
    let rows = out.assert_rolled_back_by("shadow-errors", "inconclusiveLimit 1");
    assert!(
        rows.iter().all(|r| r["verdict"] == "inconclusive"),
        "{rows:?}"
    );
    let why = out.json["rollback_reason"].as_str().unwrap_or_default();
    assert!(why.contains("no mirror route to v2 is set"), "{why}");
}

const LATENCY: &str = "analysis:
  failureLimit: 1
  metrics:
    - name: p99
      latency: { quantile: 0.99, max: 150ms }
";

#[test]
fn latency_max_rolls_back_a_slow_v2_and_promotes_a_fast_one() {
    let out = rollout(
        "analysis-latency",
        &spec("slow", ", EXTRA_LATENCY: 400ms", BACKGROUND_LONG, LATENCY),
    );
    let rows = out.assert_rolled_back_by("p99", "p99 of v2 is");
    let failed: Vec<f64> = rows
        .iter()
        .filter(|r| r["verdict"] == "fail")
        .filter_map(|r| r["value"].as_f64())
        .collect();
    assert_eq!(
        failed.len(),
        2,
        "failureLimit 1: the second failure rolls back"
    );
    assert!(
        failed.iter().all(|v| *v >= 400.0),
        "p99 {failed:?} ms with 400 ms added"
    );

    rollout("analysis-latency-good", &spec("fast", "", STEP, LATENCY)).assert_promoted("p99");
}

const RATIO: &str = "analysis:
  failureLimit: 1
  metrics:
    - name: p99-vs-old
      latency: { quantile: 0.99, maxRatioToOld: 3 }
";

#[test]
fn latency_ratio_to_the_old_version_rolls_back_a_slow_v2_and_promotes_a_like_one() {
    let out = rollout(
        "analysis-ratio",
        &spec("ratio", ", EXTRA_LATENCY: 300ms", BACKGROUND_LONG, RATIO),
    );
    let rows = out.assert_rolled_back_by("p99-vs-old", "x v1's");
    let failed = rows.iter().find(|r| r["verdict"] == "fail").unwrap();
    assert!(failed["value"].as_f64().unwrap() > 3.0, "{failed}");

    // Both versions equally slow: the ratio stays near 1.
    let slow_both = spec("ratio", ", EXTRA_LATENCY: 30ms", STEP, RATIO).replace(
        "APP_VERSION: v1 }",
        "APP_VERSION: v1, EXTRA_LATENCY: 30ms }",
    );
    rollout("analysis-ratio-good", &slow_both).assert_promoted("p99-vs-old");
}

/// A smoke command that sees the substitutions: passes when `{{version}}` is `good` and the
/// main route (`{{url}}`) answers.
fn smoke(version_wanted: &str) -> String {
    format!(
        r#"analysis:
  metrics:
    - name: smoke
      command: ["python3", "-c", "import sys, urllib.request; urllib.request.urlopen(sys.argv[2], timeout=2); sys.exit(0 if sys.argv[1] == '{version_wanted}' else 3)", "{{{{version}}}}", "{{{{url}}}}"]
      timeout: 5s
"#
    )
}

#[test]
fn command_rolls_back_when_the_smoke_test_fails_and_promotes_when_it_passes() {
    let out = rollout(
        "analysis-command",
        &spec("smoke", "", BACKGROUND, &smoke("v3")),
    );
    let rows = out.assert_rolled_back_by("smoke", "exited with 3");
    assert_eq!(rows[0]["value"], 3.0);
    assert_eq!(rows[0]["threshold"], "exit code 0");

    rollout(
        "analysis-command-good",
        &spec("smoke", "", STEP, &smoke("v2")),
    )
    .assert_promoted("smoke");
}

#[test]
fn too_few_requests_are_inconclusive_and_roll_back_past_the_limit() {
    let analysis = "analysis:
  inconclusiveLimit: 1
  minRequests: 100000
  metrics:
    - name: success-rate
      successRate: { min: 99% }
";
    let out = rollout("analysis-few", &spec("few", "", BACKGROUND, analysis));
    let rows = out.assert_rolled_back_by("success-rate", "inconclusiveLimit 1");
    assert!(
        rows.iter()
            .all(|r| r["verdict"] == "inconclusive" && r["value"].is_null()),
        "{rows:?}"
    );
    assert!(
        out.stdout.contains("fewer than minRequests 100000"),
        "{}",
        out.stdout
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const ERROR_RATIO: &str = r#"(sum(rate(http_requests_total{version="{{version}}",status=~"5.."}[5s])) or vector(0)) / sum(rate(http_requests_total{version="{{version}}"}[5s]))"#;

fn prometheus_analysis(address: &str) -> String {
    format!(
        "analysis:
  inconclusiveLimit: 4
  metrics:
    - name: error-ratio
      prometheus:
        address: {address}
        query: '{ERROR_RATIO}'
        max: 0.05
"
    )
}

#[test]
fn an_unreachable_prometheus_is_inconclusive_never_a_pass() {
    let address = format!("http://127.0.0.1:{}", free_port());
    let analysis = prometheus_analysis(&address);
    // Past inconclusiveLimit: rolled back, with the reason.
    let strict = analysis.replace("inconclusiveLimit: 4", "inconclusiveLimit: 1");
    let out = rollout("analysis-prom-down", &spec("down", "", BACKGROUND, &strict));
    let rows = out.assert_rolled_back_by("error-ratio", "did not answer");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().all(|r| r["verdict"] == "inconclusive"),
        "{rows:?}"
    );
    // The steps end within the limit, without a single pass: the promotion waits for one until
    // the limit, and never comes.
    let out = rollout(
        "analysis-prom-down-lenient",
        &spec("down", "", BACKGROUND, &analysis),
    );
    let rows = out.assert_rolled_back_by("error-ratio", "inconclusiveLimit 4");
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(rows.iter().all(|r| r["verdict"] == "inconclusive"));
}

/// A real Prometheus on a free loopback port, scraping the run's `prometheus-targets.json`
/// every second; killed on drop.
struct Prometheus {
    child: Child,
    address: String,
}

impl Prometheus {
    fn start(dir: &Path, targets: &Path) -> Option<Prometheus> {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}
scrape_configs:
  - job_name: zdd
    file_sd_configs:
      - files: ['{}']
        refresh_interval: 1s
",
                targets.display()
            ),
        )
        .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let prometheus = Prometheus {
            child,
            address: format!("http://127.0.0.1:{port}"),
        };
        zdd_test_support::poll::wait_for("Prometheus ready", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Some(prometheus)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus_rollout(name: &str, v2_env: &str) -> Outcome {
    let run = Run::new(name);
    // The run directory exists before zdd writes the targets into it, so Prometheus watches it.
    let run_dir = run.path().join("runs/prom");
    std::fs::create_dir_all(&run_dir).unwrap();
    let prometheus = Prometheus::start(run.path(), &run_dir.join("prometheus-targets.json"))
        .expect("prometheus on PATH (scripts/install-test-deps.sh installs it)");
    let steps = "      - setWeight: 50\n      - pause: 10s";
    let out = rollout_in(
        &run,
        "prom",
        &spec(
            "prom",
            v2_env,
            steps,
            &prometheus_analysis(&prometheus.address),
        ),
    );
    drop(prometheus);
    out
}

#[test]
fn a_real_prometheus_scraping_the_replicas_rolls_back_a_failing_v2_and_promotes_a_good_one() {
    let out = prometheus_rollout("analysis-prom-bad", ", ERROR_RATE: \"0.3\"");
    let rows = out.assert_rolled_back_by("error-ratio", "failureLimit 0");
    let failed = rows.iter().find(|r| r["verdict"] == "fail").unwrap();
    let ratio = failed["value"].as_f64().unwrap();
    assert!(
        (0.15..0.45).contains(&ratio),
        "30% of v2's answers fail: {ratio}"
    );

    let out = prometheus_rollout("analysis-prom-good", "");
    out.assert_promoted("error-ratio");
}

/// Bad analysis input: refused before anything starts, `file:line:col: field.path: message`
/// in users' words, exit 2.
#[test]
fn bad_analysis_input_is_refused_with_its_position_and_exit_2() {
    let cases: [(&str, &str, &str); 10] = [
        (
            "  metrics:\n    - name: x\n      mirror: { successRate: { min: 101% } }\n",
            "24:37",
            "analysis.metrics[0].mirror.successRate.min: expected a share from 0% to 100%",
        ),
        (
            "  metrics:\n    - name: x\n      errorRate: { max: 1% }\n",
            "24:7",
            "unknown field `errorRate`",
        ),
        (
            "  metrics:\n    - name: x\n      successRate: { min: 150% }\n",
            "24:27",
            "analysis.metrics[0].successRate.min: expected a share from 0% to 100%",
        ),
        (
            "  metrics:\n    - name: x\n      latency: { quantile: 1.5, max: 50ms }\n",
            "24:28",
            "analysis.metrics[0].latency.quantile: 1.5 is not a quantile",
        ),
        (
            "  metrics:\n    - name: x\n      latency: { quantile: 0.9, max: 50ms, maxRatioToOld: 2 }\n",
            "24:16",
            "analysis.metrics[0].latency: give either max",
        ),
        (
            "  metrics:\n    - name: x\n      prometheus: { address: http://127.0.0.1:9090, query: 'sum(up)', max: 1 }\n",
            "24:60",
            "analysis.metrics[0].prometheus.query: the query must select the new version: write {{version}}",
        ),
        (
            "  metrics:\n    - name: x\n      prometheus: { address: 127.0.0.1:9090, query: 'up{v=\"{{version}}\"}', max: 1 }\n",
            "24:30",
            "analysis.metrics[0].prometheus.address: `127.0.0.1:9090` is not an http:// address",
        ),
        (
            "  interval: 500ms\n  metrics:\n    - name: x\n      successRate: { min: 99% }\n",
            "22:13",
            "analysis.interval: must be a whole number of seconds",
        ),
        (
            "  metrics:\n    - name: x\n      successRate: { min: 99% }\n      command: [\"true\"]\n",
            "23:7",
            "analysis.metrics[0]: give exactly one kind of measurement",
        ),
        (
            "  startingStep: 4\n  metrics:\n    - name: x\n      successRate: { min: 99% }\n",
            "22:17",
            "analysis.startingStep: 4 is not a step: the steps are numbered 1 to 2",
        ),
    ];
    let run = Run::new("analysis-refused");
    for (analysis, position, message) in cases {
        let text = spec("bad", "", BACKGROUND, &format!("analysis:\n{analysis}"));
        let stderr = refused(&run, &text);
        assert!(
            stderr.starts_with(&format!("bad.yaml:{position}: ")),
            "{position}: {stderr}"
        );
        assert!(stderr.contains(message), "{message}: {stderr}");
    }
    // An analysis block that nothing would run.
    for (strategy, message) in [
        ("  recreate: {}", "recreate runs no analysis"),
        (
            "  blueGreen: {}",
            "prePromotionAnalysis or postPromotionAnalysis",
        ),
    ] {
        let stderr = refused(&run, &spec_with("bad", "", strategy, SUCCESS_RATE));
        assert!(
            stderr.starts_with("bad.yaml:18:3: analysis: ") && stderr.contains(message),
            "{stderr}"
        );
    }
    // An analysis step without an analysis block.
    let steps = "      - setWeight: 50\n      - analysis: { duration: 2s }";
    let stderr = refused(&run, &spec("bad", "", steps, ""));
    assert!(
        stderr.starts_with("bad.yaml:17:9: strategy.canary.steps[1].analysis: "),
        "{stderr}"
    );
}

/// `zdd rollout` of `text`, which must be refused with exit 2 and one line: that line.
fn refused(run: &Run, text: &str) -> String {
    run.write("bad.yaml", text);
    let output = run
        .command(&["rollout", "-f", "bad.yaml", "--run-dir", "runs/bad"])
        .output()
        .unwrap();
    let stderr = text_of(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}\n{text}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

#[test]
fn blue_green_pre_promotion_analysis_keeps_a_failing_v2_off_the_main_route() {
    let strategy = "  blueGreen: { prePromotionAnalysis: { duration: 4s } }";
    let out = rollout(
        "analysis-bg-pre",
        &spec_with("bg", ", ERROR_RATE: \"0.2\"", strategy, SUCCESS_RATE),
    );
    let rows = out.assert_rolled_back_by("success-rate", "failureLimit 0");
    assert!(rows.iter().any(|r| r["verdict"] == "fail"), "{rows:?}");
    // Measured through the preview route: no request of the main route reached v2.
    let by_version = &out.json["by_version"];
    assert!(by_version["v2"].is_null(), "{by_version}");
    assert_eq!(out.json["failed"], 0, "{}", out.stdout);
}

#[test]
fn blue_green_post_promotion_analysis_rolls_back_to_the_old_version_still_up() {
    let strategy = "  blueGreen: { postPromotionAnalysis: { duration: 4s } }";
    let out = rollout(
        "analysis-bg-post",
        &spec_with("bg", ", ERROR_RATE: \"0.2\"", strategy, SUCCESS_RATE),
    );
    out.assert_rolled_back_by("success-rate", "failureLimit 0");
    let events = out.json["events"].as_array().unwrap();
    let position = |kind: &str| events.iter().position(|e| e["kind"] == kind);
    // v1 was never scaled down: the rollback only moved the route back.
    assert!(
        !events
            .iter()
            .any(|e| e["kind"] == "scaled" && e["version"] == "v1" && e["replicas"] == 0),
        "{}",
        out.stdout
    );
    assert!(position("rolled_back") > position("analysis_measured"));

    let strategy = "  blueGreen:\n    prePromotionAnalysis: { duration: 2s }\n    postPromotionAnalysis: { duration: 2s }";
    let out = rollout(
        "analysis-bg-good",
        &spec_with("bg", "", strategy, SUCCESS_RATE),
    );
    out.assert_promoted("success-rate");
    let steps: Vec<&str> = out.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "analysis_started")
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["analysis step", "analysis step"], "pre and post");
}

#[test]
fn rolling_update_background_analysis_rolls_back_a_failing_v2_and_promotes_a_good_one() {
    let strategy = "  rollingUpdate: { maxSurge: 1, maxUnavailable: 0 }";
    let out = rollout(
        "analysis-ru-bad",
        &spec_with("ru", ", ERROR_RATE: \"0.2\"", strategy, SUCCESS_RATE),
    );
    out.assert_rolled_back_by("success-rate", "failureLimit 0");

    let out = rollout(
        "analysis-ru-good",
        &spec_with("ru", "", strategy, SUCCESS_RATE),
    );
    out.assert_promoted("success-rate");
}

/// `zdd status` shows each metric's measurements so far while the rollout runs.
#[test]
fn zdd_status_shows_the_analysis_state() {
    let run = Run::new("analysis-status");
    let steps = "      - setWeight: 50\n      - analysis: { duration: 8s }";
    let (child, run_dir) = run.start_rollout("st", &spec("st", "", steps, SUCCESS_RATE));
    let status = run.wait_status(&run_dir, Duration::from_secs(60), |s| {
        s["analysis"]
            .as_str()
            .is_some_and(|a| a.contains("success-rate 1 pass"))
    });
    let analysis = status["analysis"].as_str().unwrap();
    assert!(
        analysis.starts_with("analysis step: success-rate 1 pass, 0 fail, "),
        "{analysis}"
    );
    let text = text_of(&run.control("status", &run_dir).stdout);
    assert!(text.contains("analysis step: success-rate"), "{text}");
    let output = wait_with_deadline(child, ROLLOUT_TIMEOUT);
    assert_eq!(output.status.code(), Some(0), "{}", text_of(&output.stderr));
    run.assert_nothing_left();
}

//! `zdd check` as a user runs it: the real binary on the reference service, on the examples of
//! examples/apps/ in Python, Java and Go (naive forms fail with the checks named, correct ones
//! pass), on an app that ignores SIGTERM, and on bad usage; nothing left running after any of
//! them, Ctrl-C included. Quick settings: 300 ms propagation delay, 1 s drain delays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use zdd_test_support::poll::wait_for;
use zdd_test_support::run::{text, wait_with_deadline};

use crate::support::{Run, SIGTERM_IGNORING_SERVER};

/// Every check of the fast settings ends well within this.
const CHECK_DEADLINE: Duration = Duration::from_secs(120);

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/apps")
}

fn example(path: &str) -> String {
    examples().join(path).display().to_string()
}

/// `zdd check` with the quick settings and `flags` on `command`, to its end; its JSON report,
/// when it wrote one.
fn check(run: &Run, flags: &[&str], command: &[&str]) -> (Output, Option<serde_json::Value>) {
    check_with_env(run, &[], flags, command)
}

/// [`check`], with `env` added to zdd's (and so the app's) environment.
fn check_with_env(
    run: &Run,
    env: &[(&str, &str)],
    flags: &[&str],
    command: &[&str],
) -> (Output, Option<serde_json::Value>) {
    let mut args = vec![
        "check",
        "--propagation-delay",
        "300ms",
        "--json",
        "out.json",
        "--run-dir",
        "runs/check",
    ];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(command);
    let child = run
        .command(&args)
        .env("DRAIN_DELAY", "1s")
        .env("SHUTDOWN_TIMEOUT", "5s")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start zdd check");
    let output = wait_with_deadline(child, CHECK_DEADLINE);
    let report = run
        .path()
        .join("out.json")
        .exists()
        .then(|| run.read_json("out.json"));
    run.assert_nothing_left();
    (output, report)
}

/// Each check's verdict by number.
fn verdicts(report: &serde_json::Value) -> BTreeMap<u64, String> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["number"].as_u64().unwrap(),
                c["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn failed(report: &serde_json::Value) -> Vec<u64> {
    verdicts(report)
        .into_iter()
        .filter(|(_, verdict)| verdict == "fail")
        .map(|(number, _)| number)
        .collect()
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// A correct form: exit 0, no check failed, the in-flight request answered.
fn assert_passes(output: &Output, report: Option<serde_json::Value>) {
    let report = report.unwrap_or_else(|| panic!("no report: {}", describe(output)));
    assert_eq!(output.status.code(), Some(0), "{}", describe(output));
    assert!(failed(&report).is_empty(), "{}", describe(output));
    assert_eq!(verdicts(&report)[&5], "pass", "{}", describe(output));
}

/// A naive form (the runtime's default on SIGTERM): the propagation delay, the in-flight request
/// and the exit fail; the restart on the same port passes.
fn assert_naive_fails(output: &Output, report: Option<serde_json::Value>) -> serde_json::Value {
    let report = report.unwrap_or_else(|| panic!("no report: {}", describe(output)));
    assert_eq!(output.status.code(), Some(1), "{}", describe(output));
    let failed = failed(&report);
    for number in [4, 5, 7] {
        assert!(failed.contains(&number), "{failed:?}\n{}", describe(output));
    }
    assert_eq!(verdicts(&report)[&8], "pass", "{}", describe(output));
    report
}

const SLOW: &[&str] = &["--slow-path", "/work?ms=1000"];

#[test]
fn the_reference_service_passes_every_check_with_html() {
    let run = Run::new("check-serve");
    let mut flags = SLOW.to_vec();
    flags.extend(["--html", "out.html"]);
    // A warm-up, so that check 1 sees readiness 503 before 200; a drain delay longer than the
    // propagation delay and its margin, so that no preStop is needed.
    let warm_up = [("STARTUP_DELAY", "500ms"), ("DRAIN_DELAY", "2s")];
    let (output, report) = check_with_env(&run, &warm_up, &flags, &["zdd", "serve"]);
    let report = report.unwrap_or_else(|| panic!("no report: {}", describe(&output)));
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        verdicts(&report).values().all(|v| v == "pass"),
        "{}",
        describe(&output)
    );
    let recommendation = &report["recommendation"];
    assert_eq!(recommendation["pre_stop_seconds"], 0, "{recommendation}");
    assert!(
        recommendation["yaml"]
            .as_str()
            .unwrap()
            .contains("terminationGracePeriodSeconds:")
    );
    let page = std::fs::read_to_string(run.path().join("out.html")).unwrap();
    assert!(page.contains("<svg") && !page.contains("<script"), "{page}");
}

#[test]
fn python_naive_fails_and_correct_passes() {
    let run = Run::new("check-python-naive");
    let (output, report) = check(&run, SLOW, &["python3", &example("python/naive.py")]);
    let report = assert_naive_fails(&output, report);
    // The recommendation covers the propagation delay with a preStop sleep.
    assert!(
        report["recommendation"]["pre_stop_seconds"]
            .as_u64()
            .unwrap()
            >= 1
    );

    let run = Run::new("check-python-correct");
    let (output, report) = check(&run, SLOW, &["python3", &example("python/correct.py")]);
    assert_passes(&output, report);
}

#[test]
fn java_naive_fails_and_correct_passes() {
    let run = Run::new("check-java-naive");
    let (output, report) = check(&run, SLOW, &["java", &example("java/Naive.java")]);
    let report = assert_naive_fails(&output, report);
    assert_eq!(report["measurements"]["termination"]["exit"], "code 143");

    let run = Run::new("check-java-correct");
    let (output, report) = check(&run, SLOW, &["java", &example("java/Correct.java")]);
    assert_passes(&output, report);
}

#[test]
fn go_naive_fails_and_correct_passes() {
    let run = Run::new("check-go");
    for form in ["naive", "correct"] {
        let built = std::process::Command::new("go")
            .args(["build", "-o"])
            .arg(run.path().join(form))
            .arg(format!("./{form}"))
            .current_dir(examples().join("go"))
            .output()
            .expect("go (scripts/install-test-deps.sh installs golang-go)");
        assert!(built.status.success(), "{}", describe(&built));
    }
    let binary = |form: &str| run.path().join(form).display().to_string();
    let (output, report) = check(&run, SLOW, &[&binary("naive")]);
    assert_naive_fails(&output, report);
    let (output, report) = check(&run, SLOW, &[&binary("correct")]);
    assert_passes(&output, report);
}

#[test]
fn an_app_that_ignores_sigterm_is_sigkilled_at_the_grace_period_with_its_request_cut() {
    let run = Run::new("check-stubborn");
    // Its slow request outlasts the grace period.
    run.write("stubborn.py", SIGTERM_IGNORING_SERVER);
    let flags = ["--grace-period", "2s", "--slow-path", "/work?ms=5000"];
    let (output, report) = check(&run, &flags, &["python3", "stubborn.py"]);
    let report = report.unwrap_or_else(|| panic!("{}", describe(&output)));
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let failed = failed(&report);
    for number in [3, 5, 7] {
        assert!(
            failed.contains(&number),
            "{failed:?}\n{}",
            describe(&output)
        );
    }
    let termination = &report["measurements"]["termination"];
    assert!(termination["sigkill_s"].is_f64(), "{termination}");
    assert_eq!(termination["exit"], "signal SIGKILL");
    assert_eq!(report["measurements"]["slow"]["outcome"]["kind"], "cut");
    // No grace period is long enough for an app that never exits by itself.
    assert!(report["recommendation"]["termination_grace_period_seconds"].is_null());
}

/// `python3 -m http.server` has no /readyz or /healthz (both fall back to /), and a server
/// without SO_REUSEADDR cannot listen again while its closed connections wait in TIME_WAIT.
#[test]
fn default_probe_paths_fall_back_to_root_and_a_port_not_reusable_fails_check_8() {
    let run = Run::new("check-reuse");
    run.write(
        "no_reuse.py",
        "import os, http.server\n\
         class Server(http.server.ThreadingHTTPServer):\n    allow_reuse_address = False\n\
         Server(('127.0.0.1', int(os.environ['PORT'])), \
         http.server.SimpleHTTPRequestHandler).serve_forever()\n",
    );
    let (output, report) = check(&run, &[], &["python3", "no_reuse.py"]);
    let report = report.unwrap_or_else(|| panic!("{}", describe(&output)));
    assert_eq!(report["notes"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["measurements"]["paths"]["readiness"], "/");
    assert_eq!(report["measurements"]["paths"]["liveness"], "/");
    assert!(failed(&report).contains(&8), "{}", describe(&output));
    // Because the new process could not listen there: it exited.
    let restart = &report["measurements"]["restart"];
    assert_eq!(restart["start"]["end"]["kind"], "exited", "{restart}");
    assert_eq!(verdicts(&report)[&5], "skipped", "no --slow-path");
}

#[test]
fn bad_usage_exits_2_with_a_clear_message_and_leaves_nothing() {
    let cases: [(&str, &[&str], &[&str], &str); 5] = [
        ("no-command", &[], &[], "no command"),
        ("not-startable", &[], &["/nonexistent/app"], "cannot start"),
        (
            "exits-at-once",
            &[],
            &["python3", "-c", "import sys; print('boom'); sys.exit(3)"],
            "exited (code 3)",
        ),
        (
            "never-listens",
            &["--start-timeout", "1s"],
            &["sleep", "30"],
            "nothing answered on port",
        ),
        (
            "readiness-404",
            &["--readiness-path", "/nope"],
            &[
                "python3",
                "-m",
                "http.server",
                "{port}",
                "--bind",
                "127.0.0.1",
            ],
            "answers 404",
        ),
    ];
    for (name, flags, command, message) in cases {
        let run = Run::new(&format!("check-usage-{name}"));
        let (output, report) = check(&run, flags, command);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{name}: {}",
            describe(&output)
        );
        assert!(
            text(&output.stderr).contains(message),
            "{name}: {}",
            describe(&output)
        );
        assert!(report.is_none(), "{name}: a report for nothing checked");
    }
}

#[test]
fn ctrl_c_stops_the_check_and_everything_it_started() {
    let run = Run::new("check-sigint");
    let child = run
        .command(&[
            "check",
            "--run-dir",
            "runs/check",
            "--",
            "python3",
            &example("python/correct.py"),
        ])
        .env("DRAIN_DELAY", "60s")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let events = run.path().join("runs/check/events.jsonl");
    wait_for("the app's SIGTERM", Duration::from_secs(60), || {
        std::fs::read_to_string(&events)
            .ok()
            .filter(|lines| lines.contains("\"pod_signalled\""))
    });
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT zdd");
    // Well before the app's 60 s drain would end.
    let output = wait_with_deadline(child, Duration::from_secs(20));
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        text(&output.stderr).contains("interrupted"),
        "{}",
        describe(&output)
    );
    run.assert_nothing_left();
}

#[test]
fn a_spec_gives_the_app_and_the_cluster_it_assumes() {
    let run = Run::new("check-spec");
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rolling-update.yaml");
    let child = run
        .command(&[
            "check",
            "--json",
            "out.json",
            "--run-dir",
            "runs/check",
            "-f",
        ])
        .arg(&spec)
        .args(["--propagation-delay", "300ms"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_with_deadline(child, CHECK_DEADLINE);
    run.assert_nothing_left();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let settings = &run.read_json("out.json")["settings"];
    // The spec's preStop and readiness period; the flag's propagation delay.
    assert_eq!(settings["pre_stop"], 2.0, "{settings}");
    assert_eq!(settings["readiness_period"], 0.25, "{settings}");
    assert_eq!(settings["propagation_delay"], 0.3, "{settings}");
    assert_eq!(
        settings["env"]["APP_VERSION"], "v2",
        "the version rolled out"
    );
}

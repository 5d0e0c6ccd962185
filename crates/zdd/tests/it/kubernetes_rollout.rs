//! `zdd rollout --platform kubernetes`, the real binary, through kube-rs against the fake API
//! server (and its simulated data plane, which the probe's traffic and the engine's checks go
//! through). Every strategy of `examples/` completes, and the requests zdd sent are checked.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use fake_apiserver::store::{DEPLOYMENTS, SERVICES};
use fake_apiserver::{DataPlaneAnswer, FakeApiServer, FakeConfig, Faults, RecordedRequest};
use serde_json::{Value, json};

const NAMESPACE: &str = "zdd-e2e";

struct Run {
    server: FakeApiServer,
    output: Output,
    app: String,
    summary: Option<Value>,
    _dir: tempfile::TempDir,
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(format!("{name}.yaml"))
}

/// Which data-plane URLs zdd is given (the fake's data plane stands for a NodePort or ingress).
#[derive(Clone, Copy, Debug)]
struct Access {
    /// `--verify-url` to the main Service (or TraefikService / HTTPRoute).
    verify: bool,
    /// `--preview-url` to the preview Service `<app>-preview`.
    preview: bool,
    /// `--settle-delay`.
    settle_delay: Option<Duration>,
}

const VERIFY_ONLY: Access = Access {
    verify: true,
    preview: false,
    settle_delay: None,
};

/// Runs `examples/<name>.yaml` at a moderate rate (the machine is shared) with `--router router`.
async fn rollout(name: &str, router: &str, faults: impl FnOnce(&mut Faults)) -> Run {
    rollout_with(name, router, faults, None).await
}

/// A fault that starts mid-run: once the Deployment `<app>-<version>` exists, `(verb, resource)`
/// is forbidden.
struct ForbidOnceDeployed {
    version: &'static str,
    verb: &'static str,
    resource: &'static str,
}

fn fake_config() -> FakeConfig {
    FakeConfig {
        pod_ready_after: Duration::from_millis(200),
        pod_terminate_after: Duration::from_millis(300),
        endpoints_lag: Duration::from_millis(200),
        progress_deadline_cap: Some(Duration::from_secs(2)),
        ..FakeConfig::default()
    }
}

async fn rollout_with(
    name: &str,
    router: &str,
    faults: impl FnOnce(&mut Faults),
    later: Option<ForbidOnceDeployed>,
) -> Run {
    rollout_on(fake_config(), VERIFY_ONLY, name, router, faults, later).await
}

async fn rollout_on(
    fake: FakeConfig,
    access: Access,
    name: &str,
    router: &str,
    faults: impl FnOnce(&mut Faults),
    later: Option<ForbidOnceDeployed>,
) -> Run {
    let spec = std::fs::read_to_string(example(name)).expect("example spec");
    rollout_text(fake, access, name, &spec, router, faults, later).await
}

/// [`rollout_on`] with the spec's text given (its app named `name`).
async fn rollout_text(
    fake: FakeConfig,
    access: Access,
    name: &str,
    spec: &str,
    router: &str,
    faults: impl FnOnce(&mut Faults),
    mut later: Option<ForbidOnceDeployed>,
) -> Run {
    let server = FakeApiServer::start(fake)
        .await
        .expect("fake apiserver starts");
    server.faults(faults);
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = server
        .write_kubeconfig(dir.path(), NAMESPACE)
        .expect("kubeconfig");
    let spec = spec.replace("rate: 200", "rate: 50");
    let spec_path = dir.path().join(format!("{name}.yaml"));
    std::fs::write(&spec_path, &spec).unwrap();
    let app = name.to_string();
    let json_path = dir.path().join("summary.json");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_zdd"));
    command.arg("rollout").arg("-f").arg(&spec_path).args([
        "--platform",
        "kubernetes",
        "--router",
        router,
    ]);
    if access.verify {
        command.args(["--verify-url", &server.data_plane_url(NAMESPACE, &app)]);
    }
    if access.preview {
        let preview = format!("{app}-preview");
        command.args(["--preview-url", &server.data_plane_url(NAMESPACE, &preview)]);
    }
    if let Some(delay) = access.settle_delay {
        command.args([
            "--settle-delay",
            &humantime::format_duration(delay).to_string(),
        ]);
    }
    let child = command
        .arg("--run-dir")
        .arg(dir.path().join("run"))
        .arg("--json")
        .arg(&json_path)
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let mut child = std::pin::pin!(tokio::time::timeout(Duration::from_secs(180), child));
    let output = loop {
        tokio::select! {
            output = &mut child => break output.expect("the rollout ends within 180 s").expect("zdd runs"),
            _ = tokio::time::sleep(Duration::from_millis(20)), if later.is_some() => {
                let fault = later.as_ref().expect("checked by the guard");
                let deployment = format!("{app}-{}", fault.version);
                if server.object(DEPLOYMENTS, NAMESPACE, &deployment).is_some() {
                    server.faults(|f| {
                        f.forbidden.insert((fault.verb.into(), fault.resource.into()));
                    });
                    later = None;
                }
            }
        }
    };
    let summary = std::fs::read_to_string(&json_path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .map(|v| if v.is_array() { v[0].clone() } else { v });
    Run {
        server,
        output,
        app,
        summary,
        _dir: dir,
    }
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.output.status.code(),
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }

    fn assert_exit(&self, code: i32) {
        assert_eq!(self.output.status.code(), Some(code), "{}", self.describe());
    }

    fn patches_to(&self, resource: &str, name: &str) -> Vec<RecordedRequest> {
        let suffix = format!("/{resource}/{name}");
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH" && r.path.ends_with(&suffix))
            .collect()
    }

    /// Replica counts zdd asked for, in order, for version `version`.
    fn scales(&self, version: &str) -> Vec<(u64, i64)> {
        self.patches_to("deployments", &format!("{}-{version}", self.app))
            .iter()
            .map(|r| (r.seq, r.json()["spec"]["replicas"].as_i64().unwrap_or(-1)))
            .collect()
    }

    fn answers(&self) -> Vec<DataPlaneAnswer> {
        self.server.data_plane_answers()
    }

    /// Answers through the main route (the probe's traffic), not the preview's checks.
    fn main_route_answers(&self) -> Vec<DataPlaneAnswer> {
        let route = format!("/{NAMESPACE}/{}", self.app);
        self.answers()
            .into_iter()
            .filter(|a| a.route.trim_end_matches('/') == route)
            .collect()
    }

    /// Zero downtime as the fake data plane saw it: once the app answered, every request to the
    /// main route did. (The preview route answers 503 until its new Service has endpoints; the
    /// preview check waits for that.)
    fn assert_no_failed_answer(&self) {
        let answers = self.main_route_answers();
        let first_ok = answers
            .iter()
            .position(|a| a.status == 200)
            .expect("the data plane answered");
        let failed: Vec<_> = answers[first_ok..]
            .iter()
            .filter(|a| a.status != 200)
            .collect();
        assert!(
            failed.is_empty(),
            "{} failed answers, first {:?}",
            failed.len(),
            failed.first()
        );
        let summary = self.summary.as_ref().expect("--json summary written");
        assert_eq!(summary["failed"], 0, "{summary}");
    }

    /// The scale-down of `version` to 0 came after the data plane stopped reaching it, with
    /// at least `min_requests` answers from other versions in between (what the engine checks).
    fn assert_scaled_down_after_verification(&self, version: &str, min_requests: usize) {
        let scale_down = self
            .scales(version)
            .into_iter()
            .find(|(_, replicas)| *replicas == 0)
            .map(|(seq, _)| seq)
            .unwrap_or_else(|| panic!("{version} was never scaled to 0\n{}", self.describe()));
        let answers = self.answers();
        let last_from_old = answers
            .iter()
            .filter(|a| a.version.as_deref() == Some(version))
            .map(|a| a.seq)
            .max()
            .expect("the old version answered at first");
        assert!(
            last_from_old < scale_down,
            "{version} answered after its scale-down"
        );
        let clean = answers
            .iter()
            .filter(|a| a.seq > last_from_old && a.seq < scale_down && a.status == 200)
            .count();
        assert!(
            clean >= min_requests,
            "only {clean} answers between the last one from {version} and its scale-down"
        );
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Without `--verify-url`: the run completed, said once at the start that it measures no
    /// traffic, sent none, and reported "not measured".
    fn assert_unmeasured_success(&self) {
        self.assert_exit(0);
        let stderr = self.stderr();
        assert_eq!(
            stderr
                .matches("not reachable from here (no --verify-url)")
                .count(),
            1,
            "one warning expected:\n{}",
            self.describe()
        );
        let stdout = String::from_utf8_lossy(&self.output.stdout);
        assert!(
            stdout.contains("traffic: not measured"),
            "{}",
            self.describe()
        );
        assert!(
            stdout.contains("| not measured |"),
            "table row: {}",
            self.describe()
        );
        let summary = self.summary.as_ref().expect("--json summary written");
        assert_eq!(summary["traffic_measured"], false, "{summary}");
        assert_eq!(summary["total"], 0, "{summary}");
        // No traffic went anywhere: the data plane (the only one zdd could reach) saw none.
        assert!(
            self.answers().is_empty(),
            "{} data-plane answers",
            self.answers().len()
        );
        assert!(
            self.has_event("traffic_not_measured", json!({})),
            "{:?}",
            self.events()
        );
    }

    /// The events of the run's JSON result.
    fn events(&self) -> Vec<serde_json::Value> {
        self.summary.as_ref().expect("summary")["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Whether an event of `kind` with (at least) these `fields` happened.
    fn has_event(&self, kind: &str, fields: serde_json::Value) -> bool {
        let fields = fields.as_object().expect("fields as an object").clone();
        self.events()
            .iter()
            .any(|e| e["kind"] == kind && fields.iter().all(|(name, value)| e[name] == *value))
    }

    /// The last routing write before `version` was scaled to 0 took traffic away from it, and
    /// the scale-down came at least `delay` after it (the fixed delay, timed by the fake).
    fn assert_scaled_down_after_fixed_delay(&self, version: &str, delay: Duration) {
        let requests = self.server.requests();
        let deployment = format!("/deployments/{}-{version}", self.app);
        let scale_down = requests
            .iter()
            .find(|r| {
                r.method == "PATCH"
                    && r.path.ends_with(&deployment)
                    && r.json()["spec"]["replicas"] == 0
            })
            .unwrap_or_else(|| panic!("{version} was never scaled to 0\n{}", self.describe()));
        let routes = [
            format!("/services/{}", self.app),
            format!("/traefikservices/{}", self.app),
            format!("/httproutes/{}", self.app),
        ];
        let switch = requests
            .iter()
            .filter(|r| r.seq < scale_down.seq && r.method == "PATCH")
            .rfind(|r| routes.iter().any(|route| r.path.ends_with(route.as_str())))
            .expect("a routing change before the scale-down");
        let body = switch.json();
        let selected = body["spec"]["selector"]["version"].as_str();
        let backends = body["spec"]["weighted"]["services"]
            .as_array()
            .or_else(|| body["spec"]["rules"][0]["backendRefs"].as_array())
            .cloned()
            .unwrap_or_default();
        let old_backend = format!("{}-{version}", self.app);
        let weighted_away = !backends.is_empty()
            && backends
                .iter()
                .filter(|b| b["name"] == old_backend.as_str())
                .all(|b| b["weight"] == 0);
        assert!(
            (selected.is_some() && selected != Some(version)) || weighted_away,
            "the last routing change before the scale-down still reaches {version}: {body}"
        );
        let waited = scale_down.at.saturating_sub(switch.at);
        assert!(
            waited >= delay,
            "{version} scaled down {waited:?} after the routing change, expected at least {delay:?}"
        );
        let events = &self.summary.as_ref().expect("summary")["events"];
        let unchecked = events.as_array().into_iter().flatten().any(|e| {
            e["kind"] == "drain_not_checked"
                && e["version"] == version
                && e["delay"].as_f64() == Some(delay.as_secs_f64())
        });
        assert!(unchecked, "{events:#}");
    }
}

fn selector_versions(run: &Run) -> Vec<Option<String>> {
    run.patches_to("services", &run.app)
        .iter()
        .map(|r| {
            r.json()["spec"]["selector"]["version"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

#[tokio::test]
async fn blue_green_switches_the_selector_and_retires_v1_after_verification() {
    let run = rollout("blue-green", "service", |_| {}).await;
    run.assert_exit(0);
    run.assert_no_failed_answer();
    let selectors = selector_versions(&run);
    assert_eq!(
        selectors.last(),
        Some(&Some("v2".to_string())),
        "{selectors:?}"
    );
    let switch = run
        .patches_to("services", &run.app)
        .iter()
        .find(|r| r.json()["spec"]["selector"]["version"] == "v2")
        .map(|r| r.seq)
        .expect("selector switched to v2");
    run.assert_scaled_down_after_verification("v1", 20);
    assert!(switch < run.scales("v1").last().unwrap().0);
    // The preview Service selected v2 while v1 still served.
    let preview = run.patches_to("services", &format!("{}-preview", run.app));
    assert!(
        preview
            .iter()
            .any(|r| r.json()["spec"]["selector"]["version"] == "v2"),
        "{preview:?}"
    );
    let service = run
        .server
        .object(SERVICES, NAMESPACE, &run.app)
        .expect("main service");
    assert_eq!(
        service["spec"]["selector"],
        json!({"app": "blue-green", "version": "v2"})
    );
    let switched = json!({"routing": {"main": {"only": "v2"}, "preview": null}});
    assert!(run.has_event("routing_set", switched), "{:?}", run.events());
}

#[tokio::test]
async fn with_a_lagging_data_plane_v1_is_retired_only_after_traffic_left_it() {
    // kube-proxy and the ingress see changes 1 s late, and a pod is gone 300 ms after its
    // scale-down: scaling v1 down right after the switch would drop requests (the fake's own
    // tests show it). zdd waits until the traffic shows v1 is no longer reached.
    let fake = FakeConfig {
        data_plane_lag: Duration::from_secs(1),
        ..fake_config()
    };
    let run = rollout_on(fake, VERIFY_ONLY, "blue-green", "service", |_| {}, None).await;
    run.assert_exit(0);
    run.assert_no_failed_answer();
    let switch = run
        .patches_to("services", &run.app)
        .iter()
        .find(|r| r.json()["spec"]["selector"]["version"] == "v2")
        .map(|r| r.seq)
        .expect("selector switched to v2");
    // The lag was real: v1 kept answering after the switch...
    assert!(
        run.answers()
            .iter()
            .any(|a| a.seq > switch && a.version.as_deref() == Some("v1")),
        "no answer from v1 after the switch: the data plane did not lag"
    );
    // ...and zdd scaled it down only after it stopped.
    run.assert_scaled_down_after_verification("v1", 20);
}

fn weights(run: &Run, resource: &str) -> Vec<Vec<(String, u64)>> {
    run.patches_to(resource, &run.app)
        .iter()
        .map(|r| {
            let body = r.json();
            let list = body["spec"]["weighted"]["services"]
                .as_array()
                .or_else(|| body["spec"]["rules"][0]["backendRefs"].as_array())
                .cloned()
                .unwrap_or_default();
            list.iter()
                .map(|b| {
                    (
                        b["name"].as_str().unwrap_or_default().to_string(),
                        b["weight"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .collect()
}

fn split(v1: u64, v2: u64) -> Vec<(String, u64)> {
    vec![
        ("canary-weight-v1".to_string(), v1),
        ("canary-weight-v2".to_string(), v2),
    ]
}

async fn weighted_canary(router: &str, resource: &str) {
    let run = rollout("canary-weight", router, |_| {}).await;
    run.assert_exit(0);
    run.assert_no_failed_answer();
    let sequence = weights(&run, resource);
    let weighted: Vec<_> = sequence.into_iter().filter(|w| w.len() == 2).collect();
    let expected = [split(90, 10), split(50, 50), split(10, 90)];
    assert!(
        weighted.starts_with(&expected),
        "weights in order 10, 50, 90: {weighted:?}"
    );
    assert!(
        weighted.last().is_some_and(|w| w[0].1 == 0),
        "v1 weight 0 last: {weighted:?}"
    );
    run.assert_scaled_down_after_verification("v1", 20);
    // Traffic really followed the weights: v2 answered during the canary.
    assert!(
        run.answers()
            .iter()
            .any(|a| a.version.as_deref() == Some("v2"))
    );
}

#[tokio::test]
async fn weighted_canary_on_traefik_sets_traefikservice_weights_in_order() {
    weighted_canary("traefik", "traefikservices").await;
}

#[tokio::test]
async fn weighted_canary_on_gateway_api_sets_httproute_weights_in_order() {
    weighted_canary("gateway-api", "httproutes").await;
}

#[tokio::test]
async fn canary_by_replicas_moves_replicas_and_keeps_serving() {
    let run = rollout("canary-replicas", "service", |_| {}).await;
    run.assert_exit(0);
    run.assert_no_failed_answer();
    let v2: Vec<i64> = run.scales("v2").into_iter().map(|(_, r)| r).collect();
    assert!(v2.contains(&1) && v2.contains(&3), "v2 scales: {v2:?}");
    run.assert_scaled_down_after_verification("v1", 20);
}

#[tokio::test]
async fn rolling_update_never_loses_capacity() {
    let run = rollout("rolling-update", "service", |_| {}).await;
    run.assert_exit(0);
    run.assert_no_failed_answer();
    run.assert_scaled_down_after_verification("v1", 20);
}

#[tokio::test]
async fn recreate_completes_and_reports_its_gap() {
    let run = rollout("recreate", "service", |_| {}).await;
    run.assert_exit(0);
    // v1 goes to 0 before v2 is created: recreate's gap, by design.
    let v1_down = run.scales("v1").last().expect("v1 scaled").0;
    let v2_up = run.scales("v2").first().expect("v2 created").0;
    assert!(v1_down < v2_up);
}

#[tokio::test]
async fn a_version_that_never_becomes_ready_is_rolled_back() {
    let run = rollout("blue-green", "service", |f| {
        f.never_ready.insert("v2".into());
    })
    .await;
    run.assert_exit(1);
    // Traffic never left v1, and v2 was scaled back down.
    let selectors = selector_versions(&run);
    assert!(
        selectors.iter().all(|v| v.as_deref() != Some("v2")),
        "{selectors:?}"
    );
    let v2: Vec<i64> = run.scales("v2").into_iter().map(|(_, r)| r).collect();
    assert_eq!(v2.last(), Some(&0), "v2 scales: {v2:?}");
    run.assert_no_failed_answer();
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    assert!(stdout.contains("rolled back"), "{}", run.describe());
}

#[tokio::test]
async fn a_failing_canary_exceeds_the_budget_and_traffic_goes_back_to_v1() {
    let run = rollout("canary-weight", "traefik", |f| {
        f.failing_versions.insert("v2".into());
    })
    .await;
    run.assert_exit(1);
    let all = run.describe();
    assert!(all.contains("rolled back"), "{all}");
    // The weights went to v2 once (10), then everything back to v1.
    let weighted: Vec<_> = weights(&run, "traefikservices")
        .into_iter()
        .filter(|w| w.len() == 2)
        .collect();
    assert_eq!(weighted.first(), Some(&split(90, 10)), "{weighted:?}");
    // Back to the main Service alone (which selects v1 only or every ready replica, v2 has none).
    let last = weights(&run, "traefikservices").pop().unwrap();
    assert_eq!(last, [("canary-weight".to_string(), 1)]);
    let v2: Vec<i64> = run.scales("v2").into_iter().map(|(_, r)| r).collect();
    assert_eq!(v2.last(), Some(&0), "v2 scales: {v2:?}");
    // The failures came from v2 only, and stopped once v2 was out of the route.
    let answers = run.answers();
    assert!(answers.iter().any(|a| a.status == 500));
    assert!(
        answers
            .iter()
            .filter(|a| a.status == 500)
            .all(|a| a.version.as_deref() == Some("v2"))
    );
    let scale_down = run.scales("v2").last().unwrap().0;
    assert!(
        answers
            .iter()
            .filter(|a| a.seq > scale_down)
            .all(|a| a.status == 200)
    );
}

#[tokio::test]
async fn a_forbidden_service_patch_at_the_start_is_explained() {
    let run = rollout("blue-green", "service", |f| {
        f.forbidden.insert(("patch".into(), "services".into()));
    })
    .await;
    assert_eq!(run.output.status.code(), Some(1), "{}", run.describe());
    let all = run.describe();
    for part in [
        "permission denied: cannot patch services \"blue-green\"",
        "in namespace \"zdd-e2e\"",
        "(context \"fake\")",
        "Nothing was changed by this run",
    ] {
        assert!(all.contains(part), "missing {part:?} in {all}");
    }
    assert!(run.scales("v1").is_empty(), "nothing deployed");
}

#[tokio::test]
async fn a_forbidden_service_patch_mid_rollout_is_explained_and_rolled_back() {
    let forbid = ForbidOnceDeployed {
        version: "v2",
        verb: "patch",
        resource: "services",
    };
    let run = rollout_with("blue-green", "service", |_| {}, Some(forbid)).await;
    assert_eq!(run.output.status.code(), Some(1), "{}", run.describe());
    let all = run.describe();
    for part in [
        "permission denied: cannot patch services",
        "in namespace \"zdd-e2e\"",
        "(context \"fake\")",
        "Changed by this run so far",
        "Deployment blue-green-v2 scaled to 3",
    ] {
        assert!(all.contains(part), "missing {part:?} in {all}");
    }
    assert!(all.contains("rolled back"), "{all}");
    let v2: Vec<i64> = run.scales("v2").into_iter().map(|(_, r)| r).collect();
    assert_eq!(v2.last(), Some(&0), "v2 scales: {v2:?}");
    // The main Service never left v1, and nothing failed for the users.
    let service = run
        .server
        .object(SERVICES, NAMESPACE, "blue-green")
        .expect("main service");
    assert_eq!(service["spec"]["selector"]["version"], "v1");
    run.assert_no_failed_answer();
}

#[tokio::test]
async fn a_broken_watch_does_not_stop_the_rollout() {
    let run = rollout("blue-green", "service", |f| {
        f.break_watch_once.insert("deployments".into());
        f.break_watch_once.insert("pods".into());
    })
    .await;
    run.assert_exit(0);
    assert_eq!(run.server.watches_broken(), 2);
    run.assert_no_failed_answer();
}

#[tokio::test]
async fn blue_green_checks_v2_through_the_preview_url_before_the_switch() {
    let access = Access {
        preview: true,
        ..VERIFY_ONLY
    };
    let run = rollout_on(fake_config(), access, "blue-green", "service", |_| {}, None).await;
    run.assert_exit(0);
    run.assert_no_failed_answer();
    assert!(
        !run.stderr().contains("no --preview-url"),
        "{}",
        run.describe()
    );
    let switch = run
        .patches_to("services", &run.app)
        .iter()
        .find(|r| r.json()["spec"]["selector"]["version"] == "v2")
        .map(|r| r.seq)
        .expect("selector switched to v2");
    // The example asks for 5 preview checks: that many answers from v2 came through the preview
    // Service before the main route switched to it.
    let preview_route = format!("/{NAMESPACE}/{}-preview", run.app);
    let preview: Vec<_> = run
        .answers()
        .into_iter()
        .filter(|a| a.route.trim_end_matches('/') == preview_route)
        .collect();
    let before_switch = preview
        .iter()
        .filter(|a| a.seq < switch && a.status == 200 && a.version.as_deref() == Some("v2"))
        .count();
    assert!(before_switch >= 5, "{preview:?}");
    assert!(
        run.has_event("preview_answers", json!({"version": "v2"})),
        "{:?}",
        run.events()
    );
}

#[tokio::test]
async fn blue_green_without_a_preview_url_skips_the_preview_check_with_a_warning() {
    let run = rollout("blue-green", "service", |_| {}).await;
    run.assert_exit(0);
    let stderr = run.stderr();
    assert_eq!(
        stderr
            .matches("no --preview-url: blue-green's preview check is skipped")
            .count(),
        1,
        "{}",
        run.describe()
    );
    assert!(
        run.has_event("preview_not_checked", json!({"version": "v2"})),
        "{:?}",
        run.events()
    );
    let preview_route = format!("/{NAMESPACE}/{}-preview", run.app);
    assert!(
        run.answers()
            .iter()
            .all(|a| a.route.trim_end_matches('/') != preview_route)
    );
}

/// The fixed delay of runs without `--verify-url`, short so the tests stay quick.
const SETTLE: Duration = Duration::from_secs(2);

const UNMEASURED: Access = Access {
    verify: false,
    preview: false,
    settle_delay: Some(SETTLE),
};

async fn rollout_unmeasured(name: &str, router: &str) -> Run {
    rollout_on(fake_config(), UNMEASURED, name, router, |_| {}, None).await
}

#[tokio::test]
async fn without_verify_url_blue_green_completes_with_the_fixed_delay() {
    let run = rollout_unmeasured("blue-green", "service").await;
    run.assert_unmeasured_success();
    run.assert_scaled_down_after_fixed_delay("v1", SETTLE);
}

#[tokio::test]
async fn without_verify_url_rolling_update_completes_with_the_fixed_delay() {
    let run = rollout_unmeasured("rolling-update", "service").await;
    run.assert_unmeasured_success();
    run.assert_scaled_down_after_fixed_delay("v1", SETTLE);
}

#[tokio::test]
async fn without_verify_url_canary_by_replicas_completes_with_the_fixed_delay() {
    let run = rollout_unmeasured("canary-replicas", "service").await;
    run.assert_unmeasured_success();
    run.assert_scaled_down_after_fixed_delay("v1", SETTLE);
}

#[tokio::test]
async fn without_verify_url_weighted_canary_completes_with_the_fixed_delay() {
    let run = rollout_unmeasured("canary-weight", "gateway-api").await;
    run.assert_unmeasured_success();
    run.assert_scaled_down_after_fixed_delay("v1", SETTLE);
}

#[tokio::test]
async fn without_verify_url_recreate_completes() {
    let run = rollout_unmeasured("recreate", "service").await;
    run.assert_unmeasured_success();
    let v1_down = run.scales("v1").last().expect("v1 scaled").0;
    let v2_up = run.scales("v2").first().expect("v2 created").0;
    assert!(v1_down < v2_up);
}

#[tokio::test]
async fn without_verify_url_the_default_delay_is_ten_seconds() {
    // No --settle-delay: the documented 10 s. Rolling update has one scale-to-zero.
    let access = Access {
        settle_delay: None,
        ..UNMEASURED
    };
    let run = rollout_on(
        fake_config(),
        access,
        "rolling-update",
        "service",
        |_| {},
        None,
    )
    .await;
    run.assert_unmeasured_success();
    run.assert_scaled_down_after_fixed_delay("v1", Duration::from_secs(10));
}

async fn zdd(args: &[&str], run_dir: &Path) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_zdd"))
        .args(args)
        .arg("--run-dir")
        .arg(run_dir)
        .kill_on_drop(true)
        .output()
        .await
        .expect("zdd runs")
}

#[tokio::test]
async fn status_shows_the_paused_rollout_and_abort_rolls_it_back() {
    let server = FakeApiServer::start(FakeConfig {
        pod_ready_after: Duration::from_millis(200),
        pod_terminate_after: Duration::from_millis(300),
        endpoints_lag: Duration::from_millis(200),
        ..FakeConfig::default()
    })
    .await
    .expect("fake apiserver starts");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path(), NAMESPACE).unwrap();
    let spec = std::fs::read_to_string(example("blue-green"))
        .unwrap()
        .replace("rate: 200", "rate: 50")
        .replace("autoPromote: true", "autoPromote: false");
    assert!(spec.contains("autoPromote: false"));
    let spec_path = dir.path().join("blue-green.yaml");
    std::fs::write(&spec_path, spec).unwrap();
    let run_dir = dir.path().join("run");
    let rollout = tokio::process::Command::new(env!("CARGO_BIN_EXE_zdd"))
        .arg("rollout")
        .arg("-f")
        .arg(&spec_path)
        .args(["--platform", "kubernetes"])
        .args([
            "--verify-url",
            &server.data_plane_url(NAMESPACE, "blue-green"),
        ])
        .args([
            "--preview-url",
            &server.data_plane_url(NAMESPACE, "blue-green-preview"),
        ])
        .arg("--run-dir")
        .arg(&run_dir)
        .env("KUBECONFIG", &kubeconfig)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("zdd rollout starts");

    // Wait (with a deadline) for the pause before the switch.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        let output = zdd(&["status", "-o", "json"], &run_dir).await;
        if output.status.success() {
            let status: Value = serde_json::from_slice(&output.stdout).expect("status JSON");
            if status["phase"] == "paused" {
                break status;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never paused: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (status["from"].as_str(), status["to"].as_str()),
        (Some("v1"), Some("v2"))
    );
    let versions = status["versions"].as_array().expect("versions");
    assert!(
        versions
            .iter()
            .any(|v| v["name"] == "v2" && v["ready"] == 3),
        "{status}"
    );
    // The rollout really waits: nothing has moved the selector to v2.
    let selector = &server
        .object(SERVICES, NAMESPACE, "blue-green")
        .expect("main service")["spec"]["selector"];
    assert_eq!(selector["version"], "v1");
    // ...and the preview Service shows v2.
    let preview = server
        .object(SERVICES, NAMESPACE, "blue-green-preview")
        .expect("preview service while paused");
    assert_eq!(preview["spec"]["selector"]["version"], "v2");
    assert_eq!(status["routing"]["preview"], "v2", "{status}");

    let abort = zdd(&["abort"], &run_dir).await;
    assert!(abort.status.success(), "{abort:?}");
    let output = tokio::time::timeout(Duration::from_secs(60), rollout.wait_with_output())
        .await
        .expect("the rollout ends after abort")
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let v2 = server
        .object(DEPLOYMENTS, NAMESPACE, "blue-green-v2")
        .expect("v2 deployment");
    assert_eq!(v2["spec"]["replicas"], 0);
    let selector = &server
        .object(SERVICES, NAMESPACE, "blue-green")
        .expect("main service")["spec"]["selector"];
    assert_eq!(selector["version"], "v1");

    // The rollback removed the preview Service (it would otherwise select v2's pods, or none):
    // deleted after the preview was set, before v2 was scaled down.
    assert!(
        server
            .object(SERVICES, NAMESPACE, "blue-green-preview")
            .is_none(),
        "the preview Service outlived the rollback"
    );
    let requests = server.requests();
    let preview_writes: Vec<_> = requests
        .iter()
        .filter(|r| r.method != "GET" && r.path.ends_with("/services/blue-green-preview"))
        .collect();
    let set = preview_writes
        .iter()
        .rfind(|r| r.method == "PATCH")
        .expect("the preview Service was applied");
    assert_eq!(set.json()["spec"]["selector"]["version"], "v2");
    let deleted = preview_writes
        .iter()
        .find(|r| r.method == "DELETE" && r.seq > set.seq)
        .unwrap_or_else(|| panic!("no DELETE after the preview: {preview_writes:?}"));
    let v2_down = requests
        .iter()
        .find(|r| {
            r.method == "PATCH"
                && r.path.ends_with("/deployments/blue-green-v2")
                && r.json()["spec"]["replicas"] == 0
        })
        .expect("v2 scaled to 0");
    assert!(
        deleted.seq < v2_down.seq,
        "preview deleted (#{}) after v2's scale-down (#{})",
        deleted.seq,
        v2_down.seq
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("rolled back"), "{stdout}");
}

/// A/B and shadow on Traefik: the header route and the mirror go on in step order, and both are
/// taken off (the IngressRoute back to its main route alone, the mirroring TraefikService
/// deleted) before v1 is scaled to 0, though no step removed them.
#[tokio::test]
async fn header_and_mirror_routes_go_on_in_order_and_off_before_the_old_version_goes() {
    let example = std::fs::read_to_string(example("ab-header")).expect("example spec");
    let (head, _) = example.split_once("strategy:").expect("a strategy");
    let spec = format!(
        "{}strategy:
  canary:
    trafficRouting: weight
    steps:
      - setHeaderRoute: {{ name: testers, match: [ {{ header: X-Canary, exact: always }} ] }}
      - setMirrorRoute: {{ name: shadow, percentage: 50 }}
      - pause: 1s
      - setWeight: 50
      - pause: 1s
traffic: {{ rate: 200, path: / }}
budget: {{ maxFailed: 0 }}
",
        head.replace("name: ab-header", "name: ab")
    );
    let run = rollout_text(
        fake_config(),
        VERIFY_ONLY,
        "ab",
        &spec,
        "traefik",
        |_| {},
        None,
    )
    .await;
    run.assert_exit(0);
    run.assert_no_failed_answer();
    let requests = run.server.requests();
    let position = |what: &dyn Fn(&RecordedRequest) -> bool, describe: &str| {
        requests
            .iter()
            .position(what)
            .unwrap_or_else(|| panic!("no {describe}\n{}", run.describe()))
    };
    let ingress =
        |r: &RecordedRequest| r.method == "PATCH" && r.path.ends_with("/ingressroutes/ab");
    let routes_of = |r: &RecordedRequest| {
        r.json()["spec"]["routes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let testers_on = |r: &RecordedRequest| {
        ingress(r)
            && routes_of(r).iter().any(|route| {
                route["match"]
                    .as_str()
                    .is_some_and(|m| m.contains("X-Canary"))
            })
    };
    let header_set = position(&testers_on, "IngressRoute with the testers route");
    let mirror_set = position(
        &|r| r.method == "PATCH" && r.path.ends_with("/traefikservices/ab-mirror"),
        "mirroring TraefikService",
    );
    let scale_down = position(
        &|r| {
            r.method == "PATCH"
                && r.path.ends_with("/deployments/ab-v1")
                && r.json()["spec"]["replicas"] == 0
        },
        "scale-down of v1",
    );
    let mirror_deleted = position(
        &|r| r.method == "DELETE" && r.path.ends_with("/traefikservices/ab-mirror"),
        "deletion of the mirroring TraefikService",
    );
    // The last IngressRoute write before v1 goes routes to the main service alone.
    let last_ingress = requests[..scale_down]
        .iter()
        .rposition(ingress)
        .expect("IngressRoute writes");
    let last_routes = routes_of(&requests[last_ingress]);
    assert!(
        header_set < mirror_set,
        "header route first: {header_set} {mirror_set}"
    );
    assert!(
        mirror_set < last_ingress && mirror_deleted < scale_down,
        "{}",
        run.describe()
    );
    assert_eq!(last_routes.len(), 1, "main route only: {last_routes:?}");
    assert_eq!(
        last_routes[0]["services"][0]["name"], "ab",
        "{last_routes:?}"
    );
    // The events say the same, in the same order.
    let kinds: Vec<String> = run
        .events()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| k.contains("route_"))
        .map(String::from)
        .collect();
    assert_eq!(
        kinds,
        [
            "header_route_set",
            "mirror_route_set",
            "header_route_removed",
            "mirror_route_removed"
        ],
        "{:?}",
        run.events()
    );
    run.assert_scaled_down_after_verification("v1", 20);
}

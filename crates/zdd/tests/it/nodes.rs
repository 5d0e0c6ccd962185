//! Simulated nodes on the local platform: scheduling (anti-affinity leaves a replica pending and
//! says why), the eviction API behind `kubectl drain` (a PodDisruptionBudget refuses, then allows),
//! a drain that costs nothing, and `zdd drain` / Ctrl-C against a real `zdd rollout`.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::support::{Run, event_position, events, python_server, serve_spec};
use zdd::events::{Event, EventLog};
use zdd::model::{
    AntiAffinity, DisruptionBudget, IntOrPercent, PlatformStatus, Scheduling, VersionTemplate,
};
use zdd::platform::local::{LocalConfig, LocalPlatform};
use zdd::platform::{NodeMaintenance, Platform, PlatformError};
use zdd_test_support::poll::eventually;
use zdd_test_support::run::{text, wait_with_deadline};

const READY_TIMEOUT: Duration = Duration::from_secs(20);

async fn platform_with(
    dir: &tempfile::TempDir,
    nodes: u32,
    budget: Option<DisruptionBudget>,
) -> (LocalPlatform, EventLog) {
    let events = EventLog::new(Instant::now());
    let mut config = LocalConfig::new(dir.path().join("run"));
    config.propagation_delay = Duration::from_millis(200);
    config.nodes = nodes;
    config.disruption_budget = budget;
    let platform = LocalPlatform::start(config, events.clone()).await.unwrap();
    (platform, events)
}

/// `replicas` of v1 with `anti_affinity` on `nodes` nodes (with `budget`), `ready` of them ready.
async fn deployed(
    dir: &tempfile::TempDir,
    nodes: u32,
    budget: Option<DisruptionBudget>,
    anti_affinity: AntiAffinity,
    (replicas, ready): (u32, u32),
) -> (LocalPlatform, EventLog, VersionTemplate) {
    let (mut platform, events) = platform_with(dir, nodes, budget).await;
    let v1 = scheduled(dir, anti_affinity);
    platform.scale(&v1, replicas).await.unwrap();
    platform
        .wait_ready("v1", ready, READY_TIMEOUT)
        .await
        .unwrap();
    (platform, events, v1)
}

fn scheduled(dir: &tempfile::TempDir, anti_affinity: AntiAffinity) -> VersionTemplate {
    VersionTemplate {
        scheduling: Scheduling {
            anti_affinity,
            max_skew: None,
        },
        ..python_server("v1", dir.path())
    }
}

/// `pod → node` of every scheduled replica that is not terminating.
fn placement(status: &PlatformStatus) -> Vec<(String, String)> {
    status
        .pods
        .iter()
        .filter(|pod| !pod.terminating)
        .filter_map(|pod| Some((pod.name.clone(), pod.node.clone()?)))
        .collect()
}

/// `kubectl drain NODE` on the platform, bounded: a drain that never ends fails the test.
async fn drain(
    nodes: &dyn NodeMaintenance,
    node: &str,
    eviction_timeout: Duration,
) -> Result<Vec<String>, PlatformError> {
    tokio::time::timeout(
        READY_TIMEOUT + eviction_timeout,
        nodes.drain(node, eviction_timeout),
    )
    .await
    .unwrap_or_else(|_| panic!("the drain of {node} never ended"))
}

fn count(events: &EventLog, matches: impl Fn(&Event) -> bool) -> usize {
    events.events().iter().filter(|e| matches(e)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_anti_affinity_with_too_few_nodes_leaves_a_replica_pending_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (mut platform, events, v1) = deployed(&dir, 2, None, AntiAffinity::Required, (3, 2)).await;

    let status = platform.status().await.unwrap();
    let mut nodes: Vec<String> = placement(&status).into_iter().map(|(_, n)| n).collect();
    nodes.sort();
    assert_eq!(nodes, ["node-1", "node-2"], "{status:#?}");
    let pending = status
        .pods
        .iter()
        .find(|pod| pod.node.is_none())
        .unwrap_or_else(|| panic!("no pending replica: {status:#?}"));
    let reason = pending.pending.clone().expect("a reason");
    assert!(
        reason.contains("0/2 nodes are available")
            && reason.contains("2 node(s) didn't match pod anti-affinity rules"),
        "{reason}"
    );
    assert_eq!(pending.pid, None, "a pending replica runs no process");
    assert!(
        events.events().contains(&Event::PodPending {
            pod: pending.name.clone(),
            reason: reason.clone(),
        }),
        "{:#?}",
        events.events()
    );
    // Waiting for it times out and says why, as `kubectl describe pod` would.
    let err = platform
        .wait_ready("v1", 3, Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("didn't match pod anti-affinity rules"),
        "{err}"
    );
    // Scaled down, the pending replica goes first (it is not ready).
    platform.scale(&v1, 2).await.unwrap();
    platform
        .wait_running_at_most("v1", 2, READY_TIMEOUT)
        .await
        .unwrap();
    let status = platform.status().await.unwrap();
    assert!(
        status.pods.iter().all(|pod| pod.node.is_some()),
        "{status:#?}"
    );
    platform.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eviction_api_refuses_while_the_budget_is_spent_and_allows_once_a_replacement_is_ready()
{
    let dir = tempfile::tempdir().unwrap();
    let budget = DisruptionBudget::MaxUnavailable(IntOrPercent::Count(1));
    let (mut platform, events, _) =
        deployed(&dir, 3, Some(budget), AntiAffinity::Required, (3, 3)).await;
    let nodes = platform.nodes();

    // node-1's replica may go: 3 healthy, 2 needed. Its replacement stays pending: node-1 is
    // cordoned and the other two already hold a replica.
    let evicted = drain(nodes.as_ref(), "node-1", READY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(evicted.len(), 1, "{evicted:?}");
    // node-2's replica may not: 2 healthy, 2 needed. The drain retries...
    let second = tokio::spawn({
        let nodes = nodes.clone();
        async move { drain(nodes.as_ref(), "node-2", READY_TIMEOUT).await }
    });
    eventually("a refused eviction", READY_TIMEOUT, || async {
        count(&events, |e| {
            matches!(e, Event::EvictionRefused { healthy: 2, needed: 2, budget, .. }
                if budget == "maxUnavailable 1")
        }) == 1
    })
    .await;
    assert!(
        !second.is_finished(),
        "the drain went on despite the budget"
    );
    // ...until node-1 is back, takes the replacement, and it is ready: then the eviction is allowed.
    nodes.uncordon("node-1").unwrap();
    let evicted = tokio::time::timeout(READY_TIMEOUT, second)
        .await
        .expect("the second drain ends")
        .unwrap()
        .unwrap();
    assert_eq!(evicted.len(), 1, "{evicted:?}");
    let all = events.events();
    let returned = all
        .iter()
        .position(|e| {
            *e == Event::NodeReturned {
                node: "node-1".into(),
            }
        })
        .unwrap();
    let replacement_ready = all
        .iter()
        .skip(returned)
        .position(|e| matches!(e, Event::PodReady { .. }))
        .map(|at| at + returned)
        .unwrap_or_else(|| panic!("{all:#?}"));
    let second_eviction = all
        .iter()
        .position(|e| matches!(e, Event::PodEvicted { node, .. } if node == "node-2"))
        .unwrap();
    assert!(replacement_ready < second_eviction, "{all:#?}");
    platform.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_blocked_longer_than_the_timeout_fails_the_drain_and_names_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    // minAvailable 3 of 3: no eviction is ever allowed.
    let budget = DisruptionBudget::MinAvailable(IntOrPercent::Count(3));
    let (mut platform, _, _) =
        deployed(&dir, 3, Some(budget), AntiAffinity::Required, (3, 3)).await;
    let started = Instant::now();
    let err = drain(
        platform.nodes().as_ref(),
        "node-1",
        Duration::from_millis(600),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < READY_TIMEOUT, "retried forever");
    match &err {
        PlatformError::EvictionBlocked {
            node,
            budget,
            needed,
            healthy,
            ..
        } => {
            assert_eq!(
                (node.as_str(), budget.as_str(), *needed, *healthy),
                ("node-1", "minAvailable 3", 3, 3),
                "{err}"
            );
        }
        other => panic!("{other}"),
    }
    // Nothing was evicted; the node stays cordoned, as after a failed `kubectl drain`.
    let status = platform.status().await.unwrap();
    assert_eq!(placement(&status).len(), 3, "{status:#?}");
    assert!(status.nodes[0].unschedulable, "{:#?}", status.nodes);
    platform.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_a_node_that_holds_no_replica_costs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // No anti-affinity: the replicas pack onto node-1.
    let (mut platform, events, _) = deployed(&dir, 3, None, AntiAffinity::None, (2, 2)).await;
    let before = platform.status().await.unwrap();
    assert!(
        placement(&before).iter().all(|(_, node)| node == "node-1"),
        "{before:#?}"
    );
    // Answers name the node of the replica that answered.
    eventually("the replicas are routed to", READY_TIMEOUT, || async {
        matches!(zdd_test_support::http::get(&platform.main_url()).await,
            Ok(answer) if answer.status == 200 && answer.header("x-zdd-node") == Some("node-1"))
    })
    .await;
    let mut config = zdd_probe::ProbeConfig::new(platform.main_url().parse().unwrap());
    config.rate = 100;
    config.fallback_version_header = Some("X-Zdd-Version".into());
    let probe = zdd_probe::start(config).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let evicted = drain(platform.nodes().as_ref(), "node-3", READY_TIMEOUT)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    probe.stop();
    let report = probe.finish().await;

    assert!(evicted.is_empty(), "{evicted:?}");
    assert!(report.total > 50, "{report:?}");
    assert_eq!(report.failed, 0, "{:?}", report.outages);
    assert_eq!(
        count(&events, |e| matches!(
            e,
            Event::PodTerminating { .. } | Event::PodEvicted { .. }
        )),
        0
    );
    let after = platform.status().await.unwrap();
    assert_eq!(placement(&after), placement(&before));
    assert!(events.events().contains(&Event::NodeDrained {
        node: "node-3".into(),
        pods: Vec::new()
    }));
    platform.shutdown().await.unwrap();
}

/// `spec` (from [`serve_spec`]) on 3 nodes, replicas spread by anti-affinity, with a budget.
fn on_three_nodes(spec: String, app_extra: &str) -> String {
    spec.replace(
        "  terminationGracePeriod: 10s\n",
        &format!("  terminationGracePeriod: 10s\n{app_extra}"),
    )
    .replace(
        "local: { propagationDelay: 500ms }",
        "local: { propagationDelay: 500ms, nodes: 3 }",
    )
}

#[test]
fn zdd_drain_during_a_paused_canary_moves_its_replicas_and_drops_nothing() {
    let run = Run::new("nodes-drain");
    let spec = on_three_nodes(
        serve_spec(
            "drain",
            "  canary:\n    steps:\n      - setReplicas: { from: 2, to: 1 }\n      - pause: {}",
            2,
            "0",
        ),
        "  podAntiAffinity: preferred\n  podDisruptionBudget: { maxUnavailable: 1 }\n",
    );
    let (child, run_dir) = run.start_rollout("drain", &spec);
    let paused = run.wait_status(&run_dir, Duration::from_secs(60), |s| {
        s["phase"] == "paused"
    });
    // Three replicas (two of v1, one of v2) on three nodes: each names its node.
    let on_node_1: Vec<String> = paused["pods"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pod| pod["node"] == "node-1")
        .map(|pod| pod["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(on_node_1.len(), 1, "{paused:#}");
    let human = text(&run.control("status", &run_dir).stdout);
    assert!(
        human.contains(&format!("{} ", on_node_1[0])) && human.contains("on node-1"),
        "{human}"
    );

    // `zdd drain NODE` / `zdd uncordon NODE` against the running rollout.
    let node_command = |command: &str, node: &str| {
        run.command(&[command, node, "--run-dir"])
            .arg(&run_dir)
            .output()
            .unwrap()
    };
    let drain = node_command("drain", "node-1");
    assert!(drain.status.success(), "{}", text(&drain.stderr));
    assert!(
        text(&drain.stdout).contains(&format!("node/node-1 drained (evicted {})", on_node_1[0])),
        "{}",
        text(&drain.stdout)
    );
    let drained = run.wait_status(&run_dir, Duration::from_secs(30), |s| {
        s["nodes"][0]["unschedulable"] == true && s["nodes"][0]["pods"] == json!([])
    });
    assert_eq!(drained["phase"], "paused", "{drained:#}");
    let unknown = node_command("drain", "node-9");
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("no node `node-9`"),
        "{}",
        text(&unknown.stderr)
    );
    let uncordon = node_command("uncordon", "node-1");
    assert!(uncordon.status.success(), "{}", text(&uncordon.stderr));

    let promote = run.control("promote", &run_dir);
    assert!(promote.status.success(), "{}", text(&promote.stderr));
    let output = wait_with_deadline(child, Duration::from_secs(90));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let result = run.read_json("out.json");
    assert_eq!(result["failed"], 0, "{}", result["outages"]);
    let all = events(&result);
    let evicted = event_position(
        &result,
        "pod_evicted",
        json!({"pod": on_node_1[0], "node": "node-1"}),
    )
    .unwrap_or_else(|| panic!("{all:#?}"));
    let drained = event_position(&result, "node_drained", json!({"node": "node-1"}))
        .unwrap_or_else(|| panic!("{all:#?}"));
    assert!(evicted < drained);
    // The evicted replica's replacement went elsewhere while node-1 was cordoned.
    let replacement = all[evicted..]
        .iter()
        .find(|e| e["kind"] == "pod_scheduled")
        .unwrap_or_else(|| panic!("no replacement: {all:#?}"));
    assert_ne!(replacement["node"], "node-1", "{all:#?}");
    run.assert_nothing_left();
}

#[test]
fn ctrl_c_during_a_blocked_drain_leaves_nothing_running() {
    let run = Run::new("nodes-sigint");
    // minAvailable 2 of 2: the cluster upgrade's first drain is refused for up to its 60 s.
    let spec = on_three_nodes(
        serve_spec("upgrade", "  clusterUpgrade: { nodeDowntime: 1s }", 2, "0")
            .replace("  to: { name: v2, env: { APP_VERSION: v2 } }\n", ""),
        "  podAntiAffinity: required\n  podDisruptionBudget: { minAvailable: 2 }\n",
    );
    let (child, run_dir) = run.start_rollout("upgrade", &spec);
    let events_file = run_dir.join("events.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&events_file)
        .unwrap_or_default()
        .contains("\"kind\":\"eviction_refused\"")
    {
        assert!(Instant::now() < deadline, "the drain never got refused");
        std::thread::sleep(Duration::from_millis(100));
    }
    let draining = run.wait_status(&run_dir, Duration::from_secs(10), |s| {
        s["step"]
            .as_str()
            .is_some_and(|step| step.contains("upgrade node-1"))
    });
    assert_eq!(draining["nodes"][0]["unschedulable"], true, "{draining:#}");
    assert!(run.leftovers().len() >= 3, "{:#?}", run.leftovers());

    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT zdd");
    let output = wait_with_deadline(child, Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let result = run.read_json("out.json");
    let outcome = result["outcome"].as_str().unwrap();
    assert!(outcome.contains("interrupted"), "{outcome}");
    run.assert_nothing_left();
}

#[test]
fn a_cluster_upgrade_on_kubernetes_is_refused_with_how_to_measure_one() {
    let run = Run::new("nodes-kubernetes");
    let spec = serve_spec("upgrade", "  clusterUpgrade: {}", 2, "0")
        .replace("  to: { name: v2, env: { APP_VERSION: v2 } }\n", "");
    run.write("upgrade.yaml", &spec);
    // Refused before any connection: no cluster is needed to see it.
    let output = run
        .command(&["rollout", "-f", "upgrade.yaml", "--platform", "kubernetes"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("does not drain the nodes") && stderr.contains("kubectl drain"),
        "{stderr}"
    );
}

//! The strategies against an in-memory platform that records every call and checks invariants as
//! they happen: capacity during a rolling update, no scale-down to zero before the data plane
//! showed that the version gets no traffic, rollback on abort and on budget.
//!
//! The fake's traffic follows its routing: a request "reaches" every version the main route could
//! send it to at that moment, so the data-plane check passes only once the routing has excluded a
//! version for a whole window. Its three nodes record what a cluster upgrade does to them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use zdd::engine::control::{Control, Interrupt, Phase};
use zdd::engine::traffic::TrafficView;
use zdd::engine::{Engine, RunOptions};
use zdd::events::{Event, EventLog};
use zdd::model::{
    NodeStatus, PlatformStatus, Routing, TrafficPolicy, VersionStatus, VersionTemplate, Weights,
};
use zdd::platform::{NodeMaintenance, Platform, PlatformError, Result};
use zdd::rollout::{RunOutcome as Outcome, execute};
use zdd::spec::Spec;
use zdd_probe::WindowStats;

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Scale(String, u32),
    Routing(Routing),
    Drain(String),
    Uncordon(String),
}

#[derive(Default)]
struct State {
    /// A loopback HTTP server that answers as the main route would (`X-Zdd-Version`).
    main_url: String,
    /// Ready replicas per version (the fake's replicas are ready as soon as they are asked for).
    ready: BTreeMap<String, u32>,
    routing_history: Vec<(Instant, Routing)>,
    calls: Vec<(Instant, Call)>,
    /// Fewest ready replicas (all versions) seen after any call.
    min_total_ready: u32,
    /// Failed requests the fake traffic reports.
    failing: bool,
    /// A drain of this node fails as if the disruption budget blocked an eviction.
    blocked_node: Option<String>,
}

#[derive(Clone)]
struct Fake(Arc<Mutex<State>>);

impl Fake {
    fn new(from: &str, replicas: u32) -> Self {
        let mut state = State {
            min_total_ready: replicas,
            ..State::default()
        };
        state.ready.insert(from.into(), replicas);
        state
            .routing_history
            .push((Instant::now(), Routing::default()));
        let fake = Fake(Arc::new(Mutex::new(state)));
        fake.serve_main_route();
        fake
    }

    /// Answers every request with the version the main route would pick now.
    fn serve_main_route(&self) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        self.state().main_url = format!("http://{}", listener.local_addr().unwrap());
        let fake = self.clone();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for mut stream in listener.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let version = {
                    let state = fake.state();
                    let routing = &state.routing_history.last().unwrap().1;
                    state
                        .ready
                        .iter()
                        .filter(|(v, n)| **n > 0 && reaches(routing, v))
                        .map(|(v, _)| v.clone())
                        .next()
                };
                let reply = match version {
                    Some(v) => format!(
                        "HTTP/1.1 200 OK\r\nX-Zdd-Version: {v}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    ),
                    None => "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                };
                let _ = stream.write_all(reply.as_bytes());
            }
        });
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    fn ready(&self, version: &str) -> u32 {
        self.state().ready.get(version).copied().unwrap_or(0)
    }

    fn routing(&self) -> Routing {
        self.state().routing_history.last().unwrap().1.clone()
    }

    fn calls(&self) -> Vec<Call> {
        self.state().calls.iter().map(|(_, c)| c.clone()).collect()
    }
}

/// Three nodes; a drain evicts nothing (the fake's replicas have no node) and takes no time.
impl NodeMaintenance for Fake {
    fn names(&self) -> Vec<String> {
        ["node-1", "node-2", "node-3"].map(String::from).to_vec()
    }

    fn statuses(&self) -> Vec<NodeStatus> {
        Vec::new()
    }

    fn drain<'a>(&'a self, node: &'a str, _: Duration) -> BoxFuture<'a, Result<Vec<String>>> {
        let mut state = self.state();
        state.calls.push((Instant::now(), Call::Drain(node.into())));
        let result = match &state.blocked_node {
            Some(blocked) if blocked == node => Err(PlatformError::EvictionBlocked {
                node: node.into(),
                pod: "v1-2".into(),
                budget: "maxUnavailable 1".into(),
                needed: 2,
                healthy: 2,
                waited: Duration::from_secs(60),
            }),
            _ => Ok(Vec::new()),
        };
        Box::pin(async move { result })
    }

    fn uncordon(&self, node: &str) -> Result<()> {
        let mut state = self.state();
        state
            .calls
            .push((Instant::now(), Call::Uncordon(node.into())));
        Ok(())
    }
}

impl Platform for Fake {
    async fn scale(&mut self, version: &VersionTemplate, replicas: u32) -> Result<()> {
        let mut state = self.state();
        state
            .calls
            .push((Instant::now(), Call::Scale(version.name.clone(), replicas)));
        state.ready.insert(version.name.clone(), replicas);
        let total: u32 = state.ready.values().sum();
        state.min_total_ready = state.min_total_ready.min(total);
        Ok(())
    }

    async fn wait_ready(
        &mut self,
        version: &str,
        ready: u32,
        _: Duration,
    ) -> Result<VersionStatus> {
        let have = self.ready(version);
        assert!(
            have >= ready,
            "waits for {ready} ready {version}, only {have} asked for"
        );
        Ok(all_ready(version, have))
    }

    async fn wait_running_at_most(
        &mut self,
        version: &str,
        running: u32,
        _: Duration,
    ) -> Result<VersionStatus> {
        let have = self.ready(version);
        assert!(
            have <= running,
            "waits for {version} ≤ {running}, {have} asked for"
        );
        Ok(all_ready(version, have))
    }

    async fn set_routing(&mut self, routing: &Routing) -> Result<()> {
        let mut state = self.state();
        let now = Instant::now();
        state.calls.push((now, Call::Routing(routing.clone())));
        state.routing_history.push((now, routing.clone()));
        Ok(())
    }

    async fn status(&mut self) -> Result<PlatformStatus> {
        let state = self.state();
        Ok(PlatformStatus {
            versions: state
                .ready
                .iter()
                .map(|(name, n)| all_ready(name, *n))
                .collect(),
            pods: Vec::new(),
            routing: state.routing_history.last().unwrap().1.clone(),
            nodes: Vec::new(),
        })
    }

    fn nodes(&self) -> Arc<dyn NodeMaintenance> {
        Arc::new(self.clone())
    }

    fn main_url(&self) -> String {
        self.state().main_url.clone()
    }

    fn preview_url(&self) -> Option<String> {
        None
    }

    async fn shutdown(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Traffic at 200 requests/s that reaches every version the routing allowed since `since`.
impl TrafficView for Fake {
    fn window(&self, since: Instant) -> WindowStats {
        let state = self.state();
        let elapsed = Instant::now().saturating_duration_since(since);
        let requests = (elapsed.as_secs_f64() * 200.0) as u64;
        let mut stats = WindowStats::default();
        if state.failing {
            stats.failed = requests;
            return stats;
        }
        stats.ok = requests;
        // Routings in force at some point of [since, now]: the last one before `since` and all after.
        let start = state
            .routing_history
            .iter()
            .rposition(|(t, _)| *t <= since)
            .unwrap_or(0);
        for (_, routing) in &state.routing_history[start..] {
            let versions: Vec<String> = match &routing.main {
                TrafficPolicy::AllReady => state
                    .ready
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(v, _)| v.to_owned())
                    .collect(),
                TrafficPolicy::Only(v) => vec![v.clone()],
                TrafficPolicy::Weighted(weights) => weights
                    .iter()
                    .filter(|(_, w)| *w > 0)
                    .map(|(v, _)| v.to_owned())
                    .collect(),
            };
            for v in versions {
                *stats.by_version.entry(v).or_default() += 1;
            }
        }
        stats
    }
}

/// The fake's replicas are ready as soon as they are asked for, and go at once.
fn all_ready(version: &str, replicas: u32) -> VersionStatus {
    VersionStatus {
        name: version.into(),
        desired: replicas,
        ready: replicas,
        running: replicas,
        terminating: 0,
    }
}

fn reaches(routing: &Routing, version: &str) -> bool {
    match &routing.main {
        TrafficPolicy::AllReady => true,
        TrafficPolicy::Only(v) => v == version,
        TrafficPolicy::Weighted(w) => w.of(version) > 0,
    }
}

/// A cluster upgrade of the fake's three nodes, each down for 10 ms.
fn upgrade_spec() -> Spec {
    let text = "name: fake\napp:\n  command: [\"x\"]\n  replicas: 3\nversions:\n  from: { name: v1 }\nstrategy:\n  clusterUpgrade: { nodeDowntime: 10ms }\n";
    Spec::parse(text, "fake.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn spec(strategy: &str, replicas: u32) -> Spec {
    let text = format!(
        "name: fake\napp:\n  command: [\"x\"]\n  replicas: {replicas}\nversions:\n  from: {{ name: v1 }}\n  to: {{ name: v2 }}\nstrategy:\n{strategy}\ndataPlaneCheck: {{ window: 300ms, minRequests: 10, timeout: 5s }}\n"
    );
    Spec::parse(&text, "fake.yaml").unwrap_or_else(|e| panic!("{e}"))
}

async fn run(spec: &Spec, fake: &Fake, control: Control) -> (Outcome, Vec<Event>) {
    let mut platform = fake.clone();
    let events = EventLog::new(Instant::now());
    let mut engine = Engine::new(
        &mut platform,
        spec,
        events.clone(),
        control,
        RunOptions::default(),
    );
    engine.attach_traffic(Arc::new(fake.clone()), Instant::now());
    let outcome = execute(&mut engine).await;
    (outcome, events.events())
}

/// Runs `strategy` from v1 (`replicas` of them, serving) to v2 on a fresh fake and asserts that
/// it succeeded. Returns the fake (its calls and routings) and the events.
async fn rollout_succeeds(strategy: &str, replicas: u32) -> (Fake, Vec<Event>) {
    let fake = Fake::new("v1", replicas);
    let (outcome, events) = run(&spec(strategy, replicas), &fake, Control::new()).await;
    assert_eq!(outcome, Outcome::Succeeded, "{events:#?}");
    (fake, events)
}

/// Once `control` shows the rollout paused, `act` on it (a `zdd promote` or `zdd abort`).
fn when_paused(
    control: &Control,
    act: impl FnOnce(&Control) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let control = control.clone();
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        while control.status().phase != Phase::Paused {
            assert!(Instant::now() < deadline, "never paused");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        act(&control);
    })
}

/// When a version was scaled to zero, the routing must have excluded it for the whole check
/// window before (recreate is the exception by design).
fn assert_retired_safely(fake: &Fake, version: &str, window: Duration) {
    let state = fake.state();
    let scaled_to_zero = state
        .calls
        .iter()
        .find(|(_, c)| *c == Call::Scale(version.into(), 0))
        .map(|(t, _)| *t)
        .unwrap_or_else(|| panic!("{version} never scaled to 0: {:?}", state.calls));
    let excluded_since = state
        .routing_history
        .iter()
        .filter(|(t, _)| *t <= scaled_to_zero)
        .rev()
        .take_while(|(_, r)| match &r.main {
            TrafficPolicy::Only(v) => v != version,
            TrafficPolicy::Weighted(w) => w.of(version) == 0,
            TrafficPolicy::AllReady => false,
        })
        .last()
        .map(|(t, _)| *t)
        .unwrap_or_else(|| panic!("{version} was still routed when scaled to 0"));
    let excluded_for = scaled_to_zero - excluded_since;
    assert!(
        excluded_for >= window,
        "{version} scaled to 0 only {excluded_for:?} after it left the route"
    );
}

#[tokio::test]
async fn rolling_update_with_max_unavailable_0_never_drops_below_n_ready() {
    for (surge, replicas) in [(1, 3), (2, 3), (1, 5)] {
        let strategy = format!("  rollingUpdate: {{ maxSurge: {surge}, maxUnavailable: 0 }}");
        let (fake, _) = rollout_succeeds(&strategy, replicas).await;
        assert_eq!(fake.ready("v2"), replicas);
        assert_eq!(fake.ready("v1"), 0);
        assert!(
            fake.state().min_total_ready >= replicas,
            "surge {surge}: only {} ready at some point",
            fake.state().min_total_ready
        );
        // Never more than replicas + surge asked for.
        let state = fake.state();
        let mut asked = BTreeMap::from([("v1".to_string(), replicas)]);
        for (_, call) in &state.calls {
            if let Call::Scale(v, n) = call {
                asked.insert(v.clone(), *n);
                assert!(
                    asked.values().sum::<u32>() <= replicas + surge,
                    "{:?}",
                    state.calls
                );
            }
        }
        drop(state);
        assert_retired_safely(&fake, "v1", Duration::from_millis(300));
    }
}

#[tokio::test]
async fn rolling_update_with_max_unavailable_only_keeps_n_minus_u_ready() {
    let (fake, _) =
        rollout_succeeds("  rollingUpdate: { maxSurge: 0, maxUnavailable: 1 }", 4).await;
    assert_eq!(fake.ready("v2"), 4);
    assert!(fake.state().min_total_ready >= 3);
}

#[tokio::test]
async fn recreate_stops_every_old_replica_before_starting_new_ones() {
    let (fake, _) = rollout_succeeds("  recreate: {}", 3).await;
    let calls: Vec<Call> = fake.state().calls.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(
        calls,
        vec![Call::Scale("v1".into(), 0), Call::Scale("v2".into(), 3)]
    );
}

#[tokio::test]
async fn blue_green_switches_then_checks_the_data_plane_before_scaling_down() {
    let (fake, events) =
        rollout_succeeds("  blueGreen: { autoPromote: true, previewChecks: 2 }", 3).await;
    assert_eq!(fake.routing().main, TrafficPolicy::Only("v2".into()));
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::RoutingSet { routing } if routing.main == TrafficPolicy::Only("v2".into())
        )),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Drained { version, .. } if version == "v1")),
        "{events:#?}"
    );
    assert_retired_safely(&fake, "v1", Duration::from_millis(300));
}

#[tokio::test]
async fn canary_by_replicas_follows_the_steps_growing_before_shrinking() {
    let (fake, _) = rollout_succeeds(
        "  canary:\n    steps:\n      - setReplicas: { from: 3, to: 1 }\n      - setReplicas: { from: 2, to: 2 }\n      - setReplicas: { from: 1, to: 3 }",
        3,
    )
    .await;
    let scales: Vec<Call> = fake
        .state()
        .calls
        .iter()
        .filter(|(_, c)| matches!(c, Call::Scale(..)))
        .map(|(_, c)| c.clone())
        .collect();
    assert_eq!(
        scales,
        vec![
            Call::Scale("v2".into(), 1),
            Call::Scale("v2".into(), 2),
            Call::Scale("v1".into(), 2),
            Call::Scale("v2".into(), 3),
            Call::Scale("v1".into(), 1),
            Call::Scale("v1".into(), 0),
        ]
    );
    assert!(fake.state().min_total_ready >= 3);
    assert_retired_safely(&fake, "v1", Duration::from_millis(300));
}

#[tokio::test]
async fn canary_by_weight_sets_weights_then_retires_the_old_version() {
    let (fake, _) = rollout_succeeds(
        "  canary:\n    trafficRouting: weight\n    steps:\n      - setWeight: 20\n      - pause: 10ms\n      - setWeight: 60",
        3,
    )
    .await;
    let weights: Vec<Weights> = fake
        .state()
        .routing_history
        .iter()
        .filter_map(|(_, r)| match &r.main {
            TrafficPolicy::Weighted(w) => Some(w.clone()),
            _ => None,
        })
        .collect();
    let v2: Vec<u32> = weights.iter().map(|w| w.of("v2")).collect();
    assert_eq!(v2, vec![20, 60, 100]);
    assert_eq!(fake.ready("v2"), 3);
    assert_retired_safely(&fake, "v1", Duration::from_millis(300));
}

#[tokio::test]
async fn abort_during_a_pause_rolls_back_to_the_old_version() {
    let spec = spec(
        "  canary:\n    trafficRouting: weight\n    steps:\n      - setWeight: 50\n      - pause: {}",
        3,
    );
    let fake = Fake::new("v1", 3);
    let control = Control::new();
    let aborter = when_paused(&control, |control| {
        control.interrupt(Interrupt::Abort {
            reason: "test".into(),
        })
    });
    let (outcome, events) = run(&spec, &fake, control.clone()).await;
    aborter.await.unwrap();
    assert!(
        matches!(outcome, Outcome::RolledBack(_)),
        "{outcome:?} {events:#?}"
    );
    assert_eq!(fake.routing().main, TrafficPolicy::Only("v1".into()));
    assert_eq!(fake.ready("v1"), 3);
    assert_eq!(fake.ready("v2"), 0);
    assert_eq!(control.status().phase, Phase::RolledBack);
    assert_retired_safely(&fake, "v2", Duration::from_millis(300));
}

#[tokio::test]
async fn promote_continues_a_paused_blue_green() {
    let spec = spec("  blueGreen: { autoPromote: false }", 2);
    let fake = Fake::new("v1", 2);
    let control = Control::new();
    assert!(
        control.promote().is_err(),
        "promote before any pause must be refused"
    );
    let promoter = when_paused(&control, |control| control.promote().unwrap());
    let (outcome, events) = run(&spec, &fake, control).await;
    promoter.await.unwrap();
    assert_eq!(outcome, Outcome::Succeeded, "{events:#?}");
    assert!(events.contains(&Event::Promoted), "{events:#?}");
    assert_eq!(fake.routing().main, TrafficPolicy::Only("v2".into()));
}

#[tokio::test]
async fn exceeding_the_budget_rolls_back() {
    // The pause would wait for `zdd promote` for ever: only the budget can end it.
    let spec = spec(
        "  canary:\n    steps:\n      - setReplicas: { from: 3, to: 1 }\n      - pause: {}",
        3,
    );
    let fake = Fake::new("v1", 3);
    let control = Control::new();
    // Requests fail from the pause on, until the rollback starts (then the old version serves).
    let breaker = {
        let fake = fake.clone();
        let control = control.clone();
        tokio::spawn(async move {
            let phase_becomes = async |wanted: Phase| {
                let deadline = Instant::now() + Duration::from_secs(30);
                while control.status().phase != wanted {
                    assert!(Instant::now() < deadline, "never {wanted:?}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            };
            phase_becomes(Phase::Paused).await;
            fake.state().failing = true;
            phase_becomes(Phase::RollingBack).await;
            fake.state().failing = false;
        })
    };
    let (outcome, events) = run(&spec, &fake, control.clone()).await;
    breaker.await.unwrap();
    match outcome {
        Outcome::RolledBack(why) => assert!(why.contains("budget exceeded"), "{why}"),
        other => panic!("{other:?} {events:#?}"),
    }
    assert_eq!(fake.ready("v2"), 0);
    assert_eq!(fake.ready("v1"), 3);
}

#[tokio::test]
async fn a_cluster_upgrade_drains_and_returns_each_node_in_turn_and_changes_no_version() {
    let fake = Fake::new("v1", 3);
    let (outcome, events) = run(&upgrade_spec(), &fake, Control::new()).await;
    assert_eq!(outcome, Outcome::Succeeded, "{events:#?}");
    let node_calls: Vec<Call> = fake
        .calls()
        .into_iter()
        .filter(|c| !matches!(c, Call::Routing(_)))
        .collect();
    let expected: Vec<Call> = ["node-1", "node-2", "node-3"]
        .iter()
        .flat_map(|n| [Call::Drain(n.to_string()), Call::Uncordon(n.to_string())])
        .collect();
    // Nothing else: no scale, no new version.
    assert_eq!(node_calls, expected);
    let downs = events
        .iter()
        .filter(|e| matches!(e, Event::NodeDown { .. }))
        .count();
    assert_eq!(downs, 3, "{events:#?}");
    assert!(
        events.contains(&Event::ClusterUpgradeFinished),
        "{events:#?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::RolloutStarted { .. })),
        "{events:#?}"
    );
}

#[tokio::test]
async fn a_blocked_drain_returns_its_node_and_fails_the_upgrade_with_nothing_to_roll_back() {
    let fake = Fake::new("v1", 3);
    fake.state().blocked_node = Some("node-2".into());
    let control = Control::new();
    let (outcome, events) = run(&upgrade_spec(), &fake, control.clone()).await;
    match &outcome {
        Outcome::Failed(why) => assert!(
            why.contains("v1-2") && why.contains("maxUnavailable 1"),
            "the budget that blocks is named: {why}"
        ),
        other => panic!("{other:?} {events:#?}"),
    }
    let node_calls: Vec<Call> = fake
        .calls()
        .into_iter()
        .filter(|c| !matches!(c, Call::Routing(_)))
        .collect();
    assert_eq!(
        node_calls,
        vec![
            Call::Drain("node-1".into()),
            Call::Uncordon("node-1".into()),
            Call::Drain("node-2".into()),
            Call::Uncordon("node-2".into()),
        ]
    );
    assert_eq!(fake.ready("v1"), 3);
    assert_eq!(control.status().phase, Phase::Failed);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ClusterUpgradeFailed { .. })),
        "{events:#?}"
    );
}

/// Traffic whose answers come from v1 until `v1_until`, then only from v2.
struct Switching {
    v1_until: Instant,
}

impl TrafficView for Switching {
    fn window(&self, since: Instant) -> WindowStats {
        let now = Instant::now();
        let mut stats = WindowStats {
            ok: (now.saturating_duration_since(since).as_secs_f64() * 200.0) as u64,
            ..WindowStats::default()
        };
        if since < self.v1_until {
            stats.by_version.insert("v1".into(), 1);
        }
        stats.by_version.insert("v2".into(), stats.ok);
        stats
    }
}

#[tokio::test]
async fn the_data_plane_check_waits_for_a_whole_clean_window_not_a_fixed_delay() {
    use zdd::engine::data_plane_check::verify_drained;
    use zdd::spec::DataPlaneCheck;
    let check = DataPlaneCheck {
        window: Duration::from_millis(300),
        min_requests: 10,
        timeout: Duration::from_secs(5),
    };
    let start = Instant::now();
    let traffic = Switching {
        v1_until: start + Duration::from_millis(700),
    };
    let drained = verify_drained(&traffic, "v1", &check)
        .await
        .expect("drains");
    // Not before v1 stopped answering plus a whole window.
    assert!(
        start.elapsed() >= Duration::from_millis(1000),
        "{drained:?}"
    );
    assert!(drained.requests >= 10);

    // A version that keeps answering fails the check at its timeout instead of being scaled down.
    let never = Switching {
        v1_until: Instant::now() + Duration::from_secs(3600),
    };
    let short = DataPlaneCheck {
        timeout: Duration::from_millis(600),
        ..check
    };
    let err = verify_drained(&never, "v1", &short).await.unwrap_err();
    assert!(err.contains("did not leave v1"), "{err}");
}

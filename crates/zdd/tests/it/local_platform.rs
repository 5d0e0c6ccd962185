//! The local platform with real replicas (Python's http.server, a real HTTP server that exits at
//! once on SIGTERM) behind the builtin router, on loopback.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::{probe, python_server, sigterm_ignoring_server};
use zdd::events::{Event, EventLog, PodExit};
use zdd::model::{
    HeaderRoute, MirrorRoute, PlatformStatus, RequestMatch, Routing, TrafficPolicy, ValueMatch,
    VersionStatus, VersionTemplate, Weights,
};
use zdd::platform::local::{LocalConfig, LocalPlatform};
use zdd::platform::{Platform, RouterKind};
use zdd_test_support::http::{get, get_with};
use zdd_test_support::poll::eventually;
use zdd_test_support::process::{children_among, processes_in_groups, test_path};

const READY_TIMEOUT: Duration = Duration::from_secs(20);

async fn platform(dir: &tempfile::TempDir, delay: Duration) -> (LocalPlatform, EventLog) {
    let events = EventLog::new(Instant::now());
    let mut config = LocalConfig::new(dir.path().join("run"));
    config.propagation_delay = delay;
    let platform = LocalPlatform::start(config, events.clone()).await.unwrap();
    (platform, events)
}

/// Starts `replicas` of `template` and waits until they are all ready.
async fn start_ready(
    platform: &mut LocalPlatform,
    template: &VersionTemplate,
    replicas: u32,
) -> VersionStatus {
    platform.scale(template, replicas).await.unwrap();
    platform
        .wait_ready(&template.name, replicas, READY_TIMEOUT)
        .await
        .unwrap()
}

fn has_event(events: &EventLog, event: &Event) -> bool {
    events.events().contains(event)
}

/// Waits (bounded) until `event` has been emitted.
async fn wait_event(events: &EventLog, event: &Event) {
    eventually(&event.to_string(), READY_TIMEOUT, || async {
        has_event(events, event)
    })
    .await;
}

/// Polls the platform's status (bounded) until `accept` holds; returns that status.
async fn wait_status(
    platform: &mut LocalPlatform,
    what: &str,
    accept: impl Fn(&PlatformStatus) -> bool,
) -> PlatformStatus {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let status = platform.status().await.unwrap();
        if accept(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn event_time(events: &EventLog, event: &Event) -> Option<f64> {
    events
        .snapshot()
        .iter()
        .find(|record| record.event == *event)
        .map(|record| record.t_s)
}

async fn pids(platform: &mut LocalPlatform) -> Vec<u32> {
    let status = platform.status().await.unwrap();
    status.pods.iter().filter_map(|pod| pod.pid).collect()
}

/// Answers of the main route until one comes from `version`.
async fn wait_routed_to(url: &str, version: &str) {
    let url = url.to_owned();
    eventually(
        &format!("{url} answers from {version}"),
        READY_TIMEOUT,
        || {
            let url = url.clone();
            async move {
                matches!(get(&url).await, Ok(answer) if answer.status == 200
                && answer.header("x-zdd-version") == Some(version))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_up_and_down_follows_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let (mut platform, events) = platform(&dir, Duration::from_millis(200)).await;
    let v1 = python_server("v1", dir.path());

    // Nothing is ready yet: the router has no endpoint.
    assert_eq!(get(&platform.main_url()).await.unwrap().status, 503);

    let status = start_ready(&mut platform, &v1, 3).await;
    assert_eq!((status.desired, status.ready, status.running), (3, 3, 3));
    wait_event(
        &events,
        &Event::EndpointsPublished {
            version: "v1".into(),
            pods: vec!["v1-1".into(), "v1-2".into(), "v1-3".into()],
        },
    )
    .await;

    // Round robin reaches all three replicas.
    let mut pods = std::collections::BTreeSet::new();
    for _ in 0..9 {
        let answer = get(&platform.main_url()).await.unwrap();
        assert_eq!(answer.status, 200);
        pods.insert(answer.header("x-zdd-pod").unwrap().to_owned());
    }
    assert_eq!(pods.len(), 3, "{pods:?}");

    platform.scale(&v1, 1).await.unwrap();
    let status = platform
        .wait_running_at_most("v1", 1, READY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!((status.desired, status.ready, status.running), (1, 1, 1));
    let all = events.events();
    assert!(
        all.contains(&Event::PodTerminating { pod: "v1-3".into() }),
        "{all:?}"
    );
    assert!(
        all.contains(&Event::PodReady { pod: "v1-1".into() }),
        "{all:?}"
    );
    assert!(
        all.iter().any(|e| matches!(
            e,
            Event::EndpointsPublished { version, pods } if version == "v1" && !pods.is_empty()
        )),
        "{all:?}"
    );

    let started = pids(&mut platform).await;
    platform.shutdown().await.unwrap();
    assert!(processes_in_groups(&started).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_delay_is_observable() {
    let delay = Duration::from_millis(1500);
    let dir = tempfile::tempdir().unwrap();
    let (mut platform, events) = platform(&dir, delay).await;
    let v1 = python_server("v1", dir.path());
    start_ready(&mut platform, &v1, 1).await;
    wait_routed_to(&platform.main_url(), "v1").await;
    // The router learnt about the replica no sooner than the delay after it became ready.
    let ready = event_time(&events, &Event::PodReady { pod: "v1-1".into() }).unwrap();
    let published = event_time(
        &events,
        &Event::EndpointsPublished {
            version: "v1".into(),
            pods: vec!["v1-1".into()],
        },
    )
    .unwrap();
    assert!(
        published - ready >= delay.as_secs_f64() - 0.01,
        "{ready} → {published}"
    );

    // The race preStop exists for: no preStop, the app exits at once on SIGTERM, and the router
    // keeps sending it requests until the delay has passed: they are refused (502).
    platform.scale(&v1, 0).await.unwrap();
    let url = platform.main_url();
    let saw_refused = AtomicBool::new(false);
    eventually("the endpoint is removed (503)", READY_TIMEOUT, || {
        let url = url.clone();
        let saw_refused = &saw_refused;
        async move {
            let status = get(&url).await.map(|a| a.status).unwrap_or(0);
            if status == 502 {
                saw_refused.store(true, Ordering::Relaxed);
            }
            status == 503
        }
    })
    .await;
    assert!(has_event(
        &events,
        &Event::PodTerminating { pod: "v1-1".into() }
    ));
    assert!(
        saw_refused.load(Ordering::Relaxed),
        "no request hit the exited replica: {:?}",
        events.snapshot()
    );
    let exited = events
        .snapshot()
        .into_iter()
        .find(|r| matches!(&r.event, Event::PodExited { pod, .. } if pod == "v1-1"))
        .unwrap();
    let removed = events
        .snapshot()
        .iter()
        .rev()
        .find(|r| {
            matches!(&r.event, Event::EndpointsPublished { version, pods } if version == "v1" && pods.is_empty())
        })
        .unwrap()
        .t_s;
    assert!(removed > exited.t_s, "{exited:?} then removal at {removed}");
    platform.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_and_preview_route() {
    let dir = tempfile::tempdir().unwrap();
    let (mut platform, _events) = platform(&dir, Duration::ZERO).await;
    start_ready(&mut platform, &python_server("v1", dir.path()), 2).await;
    start_ready(&mut platform, &python_server("v2", dir.path()), 1).await;
    assert_eq!(platform.preview_url(), None);

    platform
        .set_routing(&Routing {
            main: TrafficPolicy::Weighted(Weights(vec![("v1".into(), 75), ("v2".into(), 25)])),
            preview: Some("v2".into()),
            ..Routing::default()
        })
        .await
        .unwrap();
    wait_routed_to(&platform.main_url(), "v2").await;
    let mut v2 = 0;
    let total = 200;
    for _ in 0..total {
        let answer = get(&platform.main_url()).await.unwrap();
        assert_eq!(answer.status, 200);
        if answer.header("x-zdd-version") == Some("v2") {
            v2 += 1;
        }
    }
    assert!((30..=70).contains(&v2), "v2 got {v2} of {total}");

    let preview = platform.preview_url().expect("a preview route");
    for _ in 0..20 {
        let answer = get(&preview).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-zdd-version"), Some("v2"));
        assert_eq!(answer.header("x-zdd-pod"), Some("v2-1"));
    }

    // Blue-green's switch: only v1 on main; the preview route is gone.
    platform
        .set_routing(&Routing {
            main: TrafficPolicy::Only("v1".into()),
            preview: None,
            ..Routing::default()
        })
        .await
        .unwrap();
    assert_eq!(platform.preview_url(), None);
    for _ in 0..20 {
        let answer = get(&platform.main_url()).await.unwrap();
        assert_eq!(answer.header("x-zdd-version"), Some("v1"));
    }
    platform.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_replica_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut platform, events) = platform(&dir, Duration::ZERO).await;
    start_ready(&mut platform, &python_server("v1", dir.path()), 1).await;
    let first = pids(&mut platform).await[0];

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_status(&mut platform, "not restarted", |status| {
        let pod = &status.pods[0];
        pod.restarts == 1 && pod.ready && pod.pid.is_some_and(|pid| pid != first)
    })
    .await;
    assert!(has_event(
        &events,
        &Event::PodExited {
            pod: "v1-1".into(),
            how: PodExit::Signal("SIGKILL".into())
        }
    ));
    wait_routed_to(&platform.main_url(), "v1").await;
    let mut started = pids(&mut platform).await;
    started.push(first);
    platform.shutdown().await.unwrap();
    assert!(processes_in_groups(&started).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_liveness_restarts_the_replica() {
    let dir = tempfile::tempdir().unwrap();
    let (mut platform, events) = platform(&dir, Duration::ZERO).await;
    let mut v1 = python_server("v1", dir.path());
    // http.server answers 404 here: the liveness probe fails twice, then the kubelet restarts it.
    v1.liveness = Some(probe("/no-such-file"));
    v1.termination_grace_period = Duration::from_secs(1);
    platform.scale(&v1, 1).await.unwrap();
    wait_event(
        &events,
        &Event::PodRestartedByLiveness { pod: "v1-1".into() },
    )
    .await;
    wait_status(&mut platform, "no restart counted", |status| {
        status.pods[0].restarts >= 1
    })
    .await;
    platform.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_is_pre_stop_then_sigterm_then_sigkill_after_grace() {
    let dir = tempfile::tempdir().unwrap();
    let (mut platform, events) = platform(&dir, Duration::ZERO).await;
    let mut v1 = sigterm_ignoring_server("v1");
    v1.pre_stop_sleep = Duration::from_millis(300);
    v1.termination_grace_period = Duration::from_secs(1);
    start_ready(&mut platform, &v1, 1).await;
    let started = pids(&mut platform).await;

    platform.scale(&v1, 0).await.unwrap();
    // While terminating the replica still counts as running, never as ready.
    let status = platform.status().await.unwrap();
    assert_eq!(
        (status.versions[0].running, status.versions[0].ready),
        (1, 0)
    );
    assert_eq!(status.versions[0].terminating, 1);
    platform
        .wait_running_at_most("v1", 0, READY_TIMEOUT)
        .await
        .unwrap();
    let terminating = event_time(&events, &Event::PodTerminating { pod: "v1-1".into() }).unwrap();
    let killed = event_time(
        &events,
        &Event::PodExited {
            pod: "v1-1".into(),
            how: PodExit::Signal("SIGKILL".into()),
        },
    )
    .unwrap_or_else(|| panic!("not SIGKILLed: {:?}", events.snapshot()));
    // The grace period counts from the start of preStop: SIGKILL comes 1 s after "terminating".
    assert!(killed - terminating >= 0.95, "{terminating} → {killed}");
    assert!(processes_in_groups(&started).is_empty());
    platform.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_platform_without_shutdown_leaves_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let (mut platform, _events) = platform(&dir, Duration::ZERO).await;
    // Replicas that would survive a polite SIGTERM, mid-start and ready.
    start_ready(&mut platform, &sigterm_ignoring_server("v1"), 2).await;
    let started = pids(&mut platform).await;
    assert_eq!(started.len(), 2);
    assert_eq!(
        children_among(&started).len(),
        2,
        "replicas are our children"
    );
    drop(platform);
    assert!(
        processes_in_groups(&started).is_empty(),
        "left: {:?}",
        processes_in_groups(&started)
    );
    // And no restart happened behind our back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(children_among(&started).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_replica_and_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let (mut platform, _events) = platform(&dir, Duration::ZERO).await;
    start_ready(&mut platform, &python_server("v1", dir.path()), 2).await;
    let mut v2 = sigterm_ignoring_server("v2");
    v2.termination_grace_period = Duration::from_millis(500);
    start_ready(&mut platform, &v2, 1).await;
    let started = pids(&mut platform).await;
    let url = platform.main_url();
    let began = Instant::now();
    platform.shutdown().await.unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    assert!(processes_in_groups(&started).is_empty());
    assert!(get(&url).await.is_err(), "the router still answers");
    let status = platform.status().await.unwrap();
    assert!(status.pods.is_empty(), "{status:?}");
}

/// The reference service (`zdd serve`) as the replicas: with a preStop sleep longer than the
/// propagation delay, scaling down drops nothing, because the router forgets the replica before
/// it gets SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zdd_serve_replicas_scale_down_without_failures_when_pre_stop_covers_the_delay() {
    let dir = tempfile::tempdir().unwrap();
    let (mut platform, events) = platform(&dir, Duration::from_millis(500)).await;
    let v1 = zdd::model::VersionTemplate {
        name: "v1".into(),
        command: vec![env!("CARGO_BIN_EXE_zdd").into(), "serve".into()],
        image: None,
        env: [("APP_VERSION".to_owned(), "v1".to_owned())].into(),
        readiness: probe("/readyz"),
        liveness: Some(probe("/healthz")),
        pre_stop_sleep: Duration::from_millis(1000),
        termination_grace_period: Duration::from_secs(10),
        min_ready: Duration::ZERO,
        scheduling: Default::default(),
    };
    start_ready(&mut platform, &v1, 2).await;
    wait_event(
        &events,
        &Event::EndpointsPublished {
            version: "v1".into(),
            pods: vec!["v1-1".into(), "v1-2".into()],
        },
    )
    .await;

    let url = platform.main_url();
    let load = tokio::spawn(async move {
        // Bounded: at most 400 requests, at most 8 s.
        let began = Instant::now();
        let mut failures = Vec::new();
        let mut answered = 0;
        while answered < 400 && began.elapsed() < Duration::from_secs(8) {
            match get(&url).await {
                Ok(answer) if answer.status == 200 => answered += 1,
                Ok(answer) => failures.push(format!(
                    "{} {:?}",
                    answer.status,
                    answer.header("x-zdd-pod")
                )),
                Err(err) => failures.push(err.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (answered, failures)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    platform.scale(&v1, 1).await.unwrap();
    platform
        .wait_running_at_most("v1", 1, READY_TIMEOUT)
        .await
        .unwrap();
    let (answered, failures) = load.await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(answered > 50, "only {answered} answers");
    assert!(
        has_event(
            &events,
            &Event::PodExited {
                pod: "v1-2".into(),
                how: PodExit::Code(0)
            }
        ),
        "{:?}",
        events.snapshot()
    );
    platform.shutdown().await.unwrap();
}

/// When zdd itself is SIGKILLed (no `shutdown`, no `Drop`), the kernel kills its replicas
/// (`PR_SET_PDEATHSIG`). This test plays that zdd by running itself again as a child process that
/// starts replicas, and SIGKILLs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_die_with_a_sigkilled_zdd() {
    const HELPER: &str = "ZDD_TEST_SIGKILLED_PARENT";
    if std::env::var_os(HELPER).is_some() {
        let dir = tempfile::tempdir().unwrap();
        let (mut platform, _events) = platform(&dir, Duration::ZERO).await;
        start_ready(&mut platform, &python_server("v1", dir.path()), 2).await;
        let started: Vec<String> = pids(&mut platform)
            .await
            .iter()
            .map(u32::to_string)
            .collect();
        println!("REPLICAS {}", started.join(" "));
        // Until SIGKILLed; should that never come, dropping the platform cleans up.
        tokio::time::sleep(Duration::from_secs(60)).await;
        return;
    }

    use tokio::io::AsyncBufReadExt;
    let mut helper = tokio::process::Command::new(std::env::current_exe().unwrap())
        .arg(test_path(
            module_path!(),
            "replicas_die_with_a_sigkilled_zdd",
        ))
        .args(["--exact", "--nocapture", "--test-threads=1"])
        .env(HELPER, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(helper.stdout.take().unwrap()).lines();
    let replicas: Vec<u32> = tokio::time::timeout(READY_TIMEOUT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // The test harness's "test ... " may share the line.
            if let Some((_, pids)) = line.split_once("REPLICAS ") {
                return pids.split(' ').map(|pid| pid.parse().unwrap()).collect();
            }
        }
        panic!("the helper ended without starting replicas");
    })
    .await
    .expect("the helper started no replicas in time");
    assert_eq!(replicas.len(), 2);
    assert_eq!(processes_in_groups(&replicas).len(), 2, "replicas run");

    helper.start_kill().unwrap();
    helper.wait().await.unwrap();
    eventually(
        "the replicas die with their parent",
        Duration::from_secs(10),
        || async { processes_in_groups(&replicas).is_empty() },
    )
    .await;
}

/// The version that answered a GET of `url` with `headers`.
async fn answered_by(url: &str, headers: &[(&str, &str)]) -> Option<String> {
    let answer = get_with(url, "/", headers).await.unwrap();
    answer.header("x-zdd-version").map(str::to_owned)
}

/// A header route and a mirror through the local platform on `router`: the testers reach v2 and
/// everyone else v1; v2 gets a copy of v1's requests, counted by `mirror_stats` until the mirror
/// route goes.
pub(crate) async fn header_route_and_mirror_on(router: RouterKind) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalConfig::new(dir.path().join("run"));
    config.router = router;
    config.propagation_delay = Duration::from_millis(200);
    let mut platform = LocalPlatform::start(config, EventLog::new(Instant::now()))
        .await
        .unwrap();
    for version in ["v1", "v2"] {
        start_ready(&mut platform, &python_server(version, dir.path()), 1).await;
    }
    let only_v1 = Routing::main_only(TrafficPolicy::Only("v1".into()));
    let routing = Routing {
        header_routes: vec![HeaderRoute {
            name: "testers".into(),
            matches: vec![RequestMatch::Cookie {
                name: "group".into(),
                value: ValueMatch::Regex("b|beta".into()),
            }],
            version: "v2".into(),
        }],
        mirror: Some(MirrorRoute {
            name: "shadow".into(),
            version: "v2".into(),
            percent: 100,
            matches: vec![],
        }),
        ..only_v1.clone()
    };
    platform.set_routing(&routing).await.unwrap();
    let url = platform.main_url();
    let tester = [("Cookie", "group=beta")];
    eventually(
        "v2's endpoint reached the router",
        READY_TIMEOUT,
        || async { answered_by(&url, &tester).await.as_deref() == Some("v2") },
    )
    .await;
    for _ in 0..10 {
        assert_eq!(answered_by(&url, &tester).await.as_deref(), Some("v2"));
        assert_eq!(answered_by(&url, &[]).await.as_deref(), Some("v1"));
    }
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let stats = platform.mirror_stats().await.unwrap();
        if stats.len() == 1 && stats[0].version == "v2" && stats[0].ok >= 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "v1's requests not copied: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    platform.set_routing(&only_v1).await.unwrap();
    assert!(platform.mirror_stats().await.unwrap().is_empty());
    assert_eq!(answered_by(&url, &tester).await.as_deref(), Some("v1"));
    platform.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_route_and_mirror_on_the_builtin_router() {
    header_route_and_mirror_on(RouterKind::Builtin).await;
}

//! The Kubernetes platform through kube-rs, against the fake API server over real HTTP on
//! loopback: the requests zdd sends are checked, not just the outcome.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fake_apiserver::store::{
    DEPLOYMENTS, ENDPOINT_SLICES, HTTP_ROUTES, SERVICES, TRAEFIK_SERVICES,
};
use fake_apiserver::{FakeApiServer, FakeConfig, RecordedRequest};
use serde_json::json;
use zdd::events::{Event, EventLog};
use zdd::model::{ProbeSpec, Routing, TrafficPolicy, VersionTemplate, Weights};
use zdd::platform::kubernetes::{KubernetesConfig, KubernetesPlatform};
use zdd::platform::{Platform, RouterKind, TrafficAccess};

pub(crate) const NAMESPACE: &str = "zdd-test";
pub(crate) const WAIT: Duration = Duration::from_secs(30);

pub(crate) struct Cluster {
    pub(crate) server: FakeApiServer,
    _dir: tempfile::TempDir,
    config: KubernetesConfig,
    events: EventLog,
}

pub(crate) async fn cluster(router: RouterKind) -> Cluster {
    cluster_with(
        router,
        FakeConfig {
            pod_ready_after: Duration::from_millis(150),
            pod_terminate_after: Duration::from_millis(150),
            endpoints_lag: Duration::from_millis(100),
            ..FakeConfig::default()
        },
    )
    .await
}

async fn cluster_with(router: RouterKind, fake: FakeConfig) -> Cluster {
    let server = FakeApiServer::start(fake)
        .await
        .expect("fake apiserver starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = server
        .write_kubeconfig(dir.path(), NAMESPACE)
        .expect("kubeconfig written");
    let mut config = KubernetesConfig::new("web");
    config.kubeconfig = Some(kubeconfig);
    config.preview_url = Some(server.data_plane_url(NAMESPACE, "web-preview"));
    config.router = router;
    config.settle_delay = Duration::from_millis(50);
    Cluster {
        server,
        _dir: dir,
        config,
        events: EventLog::new(Instant::now()),
    }
}

impl Cluster {
    pub(crate) async fn connect(&self) -> KubernetesPlatform {
        KubernetesPlatform::connect(self.config.clone(), self.events.clone())
            .await
            .expect("connects to the fake apiserver")
    }

    /// Bodies of the writes (PATCH/POST/DELETE) to `<resource>/<name>`, in order.
    fn writes_to(&self, resource: &str, name: &str) -> Vec<RecordedRequest> {
        let suffix = format!("/{resource}/{name}");
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET" && r.path.ends_with(&suffix))
            .collect()
    }

    fn events(&self) -> Vec<Event> {
        self.events.events()
    }
}

pub(crate) fn template(version: &str) -> VersionTemplate {
    let probe = ProbeSpec {
        path: "/ready".into(),
        period: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        failure_threshold: 1,
        success_threshold: 1,
        initial_delay: Duration::ZERO,
    };
    VersionTemplate {
        name: version.into(),
        command: vec![],
        image: Some(format!("ghcr.io/example/demo:{version}")),
        env: BTreeMap::from([("VERSION".to_string(), version.to_string())]),
        readiness: probe,
        liveness: None,
        pre_stop_sleep: Duration::from_secs(5),
        termination_grace_period: Duration::from_secs(30),
        min_ready: Duration::ZERO,
        scheduling: Default::default(),
    }
}

/// Waits (up to 10 s: the endpoint controller runs on its own tick) until `url` answers from
/// `version`, then checks that the next 4 answers come from it too.
async fn settles_on(url: &str, version: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match get_version(url).await {
            Some(answered) if answered == version => break,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "{url} still answers from {other:?}, not {version}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..4 {
        assert_eq!(get_version(url).await.as_deref(), Some(version), "{url}");
    }
}

/// GET through the fake data plane; the version that answered (`None` for a failure).
async fn get_version(url: &str) -> Option<String> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let response = client
        .get(url.parse().unwrap())
        .await
        .expect("data plane answers");
    let version = (response.status() == 200).then(|| {
        response.headers()["x-version"]
            .to_str()
            .unwrap()
            .to_string()
    });
    response.into_body().collect().await.unwrap();
    version
}

fn only(version: &str, preview: Option<&str>) -> Routing {
    Routing {
        main: TrafficPolicy::Only(version.into()),
        preview: preview.map(String::from),
        ..Routing::default()
    }
}

pub(crate) fn weighted(weights: &[(&str, u32)]) -> Routing {
    Routing {
        main: TrafficPolicy::Weighted(weights.iter().map(|(v, w)| (v.to_string(), *w)).collect()),
        preview: None,
        ..Routing::default()
    }
}

fn index_of(requests: &[RecordedRequest], matches: impl Fn(&RecordedRequest) -> bool) -> usize {
    requests
        .iter()
        .position(matches)
        .expect("the request was sent")
}

#[tokio::test]
async fn blue_green_switches_the_selector_before_scaling_the_old_version_down() {
    let c = cluster(RouterKind::Service).await;
    let mut platform = c.connect().await;

    platform.scale(&template("v1"), 2).await.unwrap();
    platform.wait_ready("v1", 2, WAIT).await.unwrap();
    platform.set_routing(&only("v1", None)).await.unwrap();
    platform.scale(&template("v2"), 2).await.unwrap();
    let v2 = platform.wait_ready("v2", 2, WAIT).await.unwrap();
    assert_eq!((v2.desired, v2.ready), (2, 2));
    let main = c.server.data_plane_url(NAMESPACE, "web");
    settles_on(&main, "v1").await;
    platform.set_routing(&only("v1", Some("v2"))).await.unwrap();
    let preview = platform
        .preview_url()
        .expect("a preview URL while previewing");
    settles_on(&preview, "v2").await;
    settles_on(&main, "v1").await;
    platform.set_routing(&only("v2", None)).await.unwrap();
    assert_eq!(platform.preview_url(), None);
    settles_on(&main, "v2").await;
    platform.scale(&template("v1"), 0).await.unwrap();
    let v1 = platform.wait_running_at_most("v1", 0, WAIT).await.unwrap();
    assert_eq!(v1.running, 0);

    // Every write is a server-side apply by the `zdd` field manager.
    let requests = c.server.requests();
    for write in requests.iter().filter(|r| r.method == "PATCH") {
        assert_eq!(
            write.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(write.query_param("fieldManager").as_deref(), Some("zdd"));
    }
    // The main Service's selector: every version (the initial routing), v1, then v2.
    let selectors: Vec<_> = c
        .writes_to("services", "web")
        .iter()
        .map(|r| r.json()["spec"]["selector"].clone())
        .collect();
    assert_eq!(
        selectors,
        vec![
            json!({"app": "web"}),
            json!({"app": "web", "version": "v1"}),
            json!({"app": "web", "version": "v2"})
        ]
    );
    // The preview Service: a leftover one removed by the first routing, then created for v2 and
    // deleted at the switch.
    let preview: Vec<_> = c.writes_to("services", "web-preview");
    let methods: Vec<_> = preview.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["DELETE", "PATCH", "DELETE"], "{preview:?}");
    assert_eq!(preview[1].json()["spec"]["selector"]["version"], "v2");
    // No scale-down of v1 before the selector left it.
    let switch = index_of(&requests, |r| {
        r.path.ends_with("/services/web") && r.json()["spec"]["selector"]["version"] == "v2"
    });
    let scale_down = index_of(&requests, |r| {
        r.path.ends_with("/deployments/web-v1") && r.json()["spec"]["replicas"] == 0
    });
    assert!(
        switch < scale_down,
        "scale-down #{scale_down} before switch #{switch}"
    );

    // The cluster agrees: the Service's endpoints are v2's pods only.
    let slice = c
        .server
        .object(ENDPOINT_SLICES, NAMESPACE, "web-fake")
        .expect("endpoint slice of web");
    let endpoints = slice["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2);
    for endpoint in endpoints {
        let pod = endpoint["targetRef"]["name"].as_str().unwrap();
        assert!(pod.starts_with("web-v2-"), "{pod}");
    }
    let status = platform.status().await.unwrap();
    assert_eq!(status.routing, only("v2", None));
    let by_name: BTreeMap<_, _> = status
        .versions
        .iter()
        .map(|v| (v.name.as_str(), v))
        .collect();
    assert_eq!(by_name["v1"].desired, 0);
    assert_eq!((by_name["v2"].desired, by_name["v2"].ready), (2, 2));
    assert_eq!(
        status
            .pods
            .iter()
            .filter(|p| p.version == "v2" && p.ready)
            .count(),
        2
    );

    let selectors: Vec<_> = c
        .writes_to("services", "web")
        .iter()
        .map(|r| r.json()["spec"]["selector"]["version"].clone())
        .collect();
    assert_eq!(selectors.last(), Some(&json!("v2")), "{selectors:?}");
    let v1_replicas =
        c.writes_to("deployments", "web-v1").last().unwrap().json()["spec"]["replicas"].clone();
    assert_eq!(v1_replicas, json!(0));
}

#[tokio::test]
async fn without_a_verify_url_the_main_route_is_unreachable_with_the_settle_delay() {
    let mut c = cluster(RouterKind::Service).await;
    let platform = c.connect().await;
    assert_eq!(
        platform.traffic_access(),
        TrafficAccess::Unreachable {
            settle_delay: Duration::from_millis(50)
        }
    );
    // The default delay is the documented 10 s.
    assert_eq!(
        KubernetesConfig::new("web").settle_delay,
        Duration::from_secs(10)
    );
    let url = c.server.data_plane_url(NAMESPACE, "web");
    c.config.verify_url = Some(url.clone());
    let platform = c.connect().await;
    assert_eq!(platform.traffic_access(), TrafficAccess::Url(url));
}

#[tokio::test]
async fn scaling_the_previewed_version_to_zero_deletes_the_preview_service() {
    let c = cluster(RouterKind::Service).await;
    let mut platform = c.connect().await;
    platform.scale(&template("v1"), 1).await.unwrap();
    platform.wait_ready("v1", 1, WAIT).await.unwrap();
    platform.set_routing(&only("v1", None)).await.unwrap();
    platform.scale(&template("v2"), 1).await.unwrap();
    platform.wait_ready("v2", 1, WAIT).await.unwrap();
    platform.set_routing(&only("v1", Some("v2"))).await.unwrap();
    assert!(
        c.server
            .object(SERVICES, NAMESPACE, "web-preview")
            .is_some()
    );

    // A rollback: v1 keeps the main route, v2 goes.
    platform.scale(&template("v2"), 0).await.unwrap();
    assert!(
        c.server
            .object(SERVICES, NAMESPACE, "web-preview")
            .is_none()
    );
    let methods: Vec<_> = c
        .writes_to("services", "web-preview")
        .iter()
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(
        methods.last().map(String::as_str),
        Some("DELETE"),
        "{methods:?}"
    );
    let delete = c.writes_to("services", "web-preview").pop().unwrap().seq;
    let scale_down = c
        .writes_to("deployments", "web-v2")
        .into_iter()
        .find(|r| r.json()["spec"]["replicas"] == 0)
        .expect("v2 scaled to 0")
        .seq;
    assert!(delete < scale_down, "preview deleted after the scale-down");
    let status = platform.status().await.unwrap();
    assert_eq!(status.routing, only("v1", None));
    assert!(
        c.events().contains(&Event::PreviewServiceDeleted {
            service: "web-preview".into(),
            version: "v2".into()
        }),
        "{:?}",
        c.events()
    );
    // Scaling v1 (not previewed) leaves the main Service alone and deletes nothing more.
    let writes = c.writes_to("services", "web-preview").len();
    platform.scale(&template("v1"), 2).await.unwrap();
    assert_eq!(c.writes_to("services", "web-preview").len(), writes);
}

#[tokio::test]
async fn deployment_carries_the_template() {
    let c = cluster(RouterKind::Service).await;
    let mut platform = c.connect().await;
    platform.scale(&template("v1"), 3).await.unwrap();
    let d = c
        .server
        .object(DEPLOYMENTS, NAMESPACE, "web-v1")
        .expect("deployment stored");
    assert_eq!(
        d["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "zdd"
    );
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "ghcr.io/example/demo:v1");
    assert_eq!(container["lifecycle"]["preStop"]["sleep"]["seconds"], 5);
    let service = c
        .server
        .object(SERVICES, NAMESPACE, "web-v1")
        .expect("per-version service");
    assert_eq!(
        service["spec"]["selector"],
        json!({"app": "web", "version": "v1"})
    );
}

async fn run_canary(c: &Cluster) -> KubernetesPlatform {
    let mut platform = c.connect().await;
    platform.scale(&template("v1"), 2).await.unwrap();
    platform.wait_ready("v1", 2, WAIT).await.unwrap();
    platform.set_routing(&Routing::default()).await.unwrap();
    platform.scale(&template("v2"), 2).await.unwrap();
    platform.wait_ready("v2", 2, WAIT).await.unwrap();
    for split in [[90, 10], [50, 50], [0, 100]] {
        platform
            .set_routing(&weighted(&[("v1", split[0]), ("v2", split[1])]))
            .await
            .unwrap();
    }
    platform.scale(&template("v1"), 0).await.unwrap();
    platform.wait_running_at_most("v1", 0, WAIT).await.unwrap();
    platform
}

fn weight_sequence(
    c: &Cluster,
    resource: &str,
    list: &dyn Fn(&serde_json::Value) -> serde_json::Value,
) -> Vec<serde_json::Value> {
    c.writes_to(resource, "web")
        .iter()
        .map(|r| list(&r.json()))
        .collect()
}

#[tokio::test]
async fn traefik_weights_are_set_in_order_before_the_scale_down() {
    let c = cluster(RouterKind::Traefik).await;
    let mut platform = run_canary(&c).await;

    let sequence = weight_sequence(&c, "traefikservices", &|body| {
        body["spec"]["weighted"]["services"].clone()
    });
    let backend = |v1: u32, v2: u32| {
        json!([
            {"name": "web-v1", "port": 80, "weight": v1},
            {"name": "web-v2", "port": 80, "weight": v2},
        ])
    };
    assert_eq!(
        sequence,
        vec![
            json!([{"name": "web", "port": 80, "weight": 1}]),
            backend(90, 10),
            backend(50, 50),
            backend(0, 100),
        ]
    );
    let requests = c.server.requests();
    let last_weights = index_of(&requests, |r| {
        r.path.ends_with("/traefikservices/web")
            && r.json()["spec"]["weighted"]["services"] == backend(0, 100)
    });
    let scale_down = index_of(&requests, |r| {
        r.path.ends_with("/deployments/web-v1") && r.json()["spec"]["replicas"] == 0
    });
    assert!(last_weights < scale_down);
    let route = c
        .server
        .object(fake_apiserver::store::INGRESS_ROUTES, NAMESPACE, "web")
        .expect("ingress route");
    assert_eq!(
        route["spec"]["routes"][0]["services"][0],
        json!({"name": "web", "kind": "TraefikService"})
    );
    assert!(
        c.server
            .object(TRAEFIK_SERVICES, NAMESPACE, "web")
            .is_some()
    );

    let status = platform.status().await.unwrap();
    assert_eq!(
        status.routing.main,
        TrafficPolicy::Weighted(Weights(vec![("v1".into(), 0), ("v2".into(), 100)]))
    );
    let weights: Vec<Vec<(String, u64)>> = c
        .writes_to("traefikservices", "web")
        .iter()
        .map(|r| {
            r.json()["spec"]["weighted"]["services"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap().to_owned(),
                        s["weight"].as_u64().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .filter(|services| services.len() == 2)
        .collect();
    let pair = |v1: u64, v2: u64| vec![("web-v1".to_owned(), v1), ("web-v2".to_owned(), v2)];
    assert_eq!(weights, [pair(90, 10), pair(50, 50), pair(0, 100)]);
}

#[tokio::test]
async fn gateway_api_weights_go_to_httproute_backend_refs() {
    let c = cluster(RouterKind::GatewayApi).await;
    run_canary(&c).await;
    let sequence = weight_sequence(&c, "httproutes", &|body| {
        let refs = body["spec"]["rules"][0]["backendRefs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        json!(
            refs.iter()
                .map(|r| json!([r["name"], r["weight"]]))
                .collect::<Vec<_>>()
        )
    });
    assert_eq!(
        sequence,
        vec![
            json!([["web", 1]]),
            json!([["web-v1", 90], ["web-v2", 10]]),
            json!([["web-v1", 50], ["web-v2", 50]]),
            json!([["web-v1", 0], ["web-v2", 100]]),
        ]
    );
    let route = c
        .server
        .object(HTTP_ROUTES, NAMESPACE, "web")
        .expect("httproute");
    assert_eq!(route["spec"]["parentRefs"][0]["name"], "zdd-gateway");
}

#[tokio::test]
async fn a_version_that_never_becomes_ready_fails_at_the_progress_deadline() {
    let mut c = cluster(RouterKind::Service).await;
    c.config.progress_deadline = Duration::from_secs(1);
    c.server.faults(|f| {
        f.never_ready.insert("v2".into());
    });
    let mut platform = c.connect().await;
    platform.scale(&template("v2"), 2).await.unwrap();
    let started = Instant::now();
    let err = platform
        .wait_ready("v2", 2, Duration::from_secs(60))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(
            "web-v2 in namespace \"zdd-test\" (context \"fake\") exceeded its progress deadline"
        ),
        "{message}"
    );
    assert!(
        message.contains("Deployment web-v2 scaled to 2"),
        "{message}"
    );
    // It stopped on the Deployment's condition, not on the 60 s timeout.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn wait_ready_times_out_with_the_state_it_saw() {
    let c = cluster(RouterKind::Service).await;
    c.server.faults(|f| {
        f.never_ready.insert("v2".into());
    });
    let mut platform = c.connect().await;
    platform.scale(&template("v2"), 1).await.unwrap();
    let err = platform
        .wait_ready("v2", 1, Duration::from_millis(800))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("timed out"), "{message}");
    assert!(
        message.contains("deployment web-v2 in namespace \"zdd-test\" (context \"fake\")"),
        "{message}"
    );
    assert!(message.contains("v2: 0/1 replicas ready"), "{message}");
}

#[tokio::test]
async fn a_forbidden_patch_names_verb_object_namespace_context_and_what_was_changed() {
    let c = cluster(RouterKind::Service).await;
    let mut platform = c.connect().await;
    platform.scale(&template("v1"), 1).await.unwrap();
    c.server.faults(|f| {
        f.forbidden.insert(("patch".into(), "services".into()));
    });
    let err = platform.set_routing(&only("v1", None)).await.unwrap_err();
    let message = err.to_string();
    for part in [
        "permission denied: cannot patch services \"web\"",
        "in namespace \"zdd-test\"",
        "(context \"fake\")",
        "deploy/kubernetes/rbac/",
        "User \"system:serviceaccount:zdd-test:zdd\" cannot patch resource \"services\"",
        "Changed by this run so far",
        "Deployment web-v1 scaled to 1",
    ] {
        assert!(message.contains(part), "missing {part:?} in: {message}");
    }
    // The selector was not changed: still every version, as the first scale left it.
    let service = c
        .server
        .object(SERVICES, NAMESPACE, "web")
        .expect("main service");
    assert_eq!(service["spec"]["selector"], json!({"app": "web"}));
}

#[tokio::test]
async fn a_broken_watch_is_resumed_from_its_resource_version() {
    let c = cluster(RouterKind::Service).await;
    c.server.faults(|f| {
        f.break_watch_once.insert("deployments".into());
    });
    let mut platform = c.connect().await;
    platform.scale(&template("v1"), 2).await.unwrap();
    let status = platform.wait_ready("v1", 2, WAIT).await.unwrap();
    assert_eq!(status.ready, 2);
    assert_eq!(c.server.watches_broken(), 1);
    let watches: Vec<_> = c
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/deployments") && r.verb() == "watch")
        .collect();
    assert!(watches.len() >= 2, "{watches:?}");
    let resumed = &watches[1];
    let rv: u64 = resumed
        .query_param("resourceVersion")
        .unwrap()
        .parse()
        .unwrap();
    // Resumed where it broke, not re-listed from scratch.
    assert!(rv > 0, "resumed from {rv}");
    let lists = c
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/deployments") && r.verb() == "list")
        .count();
    assert_eq!(lists, 1);
}

#[tokio::test]
async fn weights_need_a_router_and_versions_need_an_image() {
    let c = cluster(RouterKind::Service).await;
    let mut platform = c.connect().await;
    let err = platform
        .set_routing(&weighted(&[("v1", 90), ("v2", 10)]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--router traefik"), "{err}");
    let mut no_image = template("v3");
    no_image.image = None;
    let err = platform.scale(&no_image, 1).await.unwrap_err();
    assert!(err.to_string().contains("version v3 has no image"), "{err}");
}

#[tokio::test]
async fn an_unreachable_api_server_is_named_with_its_context() {
    let c = cluster(RouterKind::Service).await;
    let url = c.server.url();
    let dir = tempfile::tempdir().unwrap();
    // A kubeconfig for a server that is gone: bind a port, then free it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let text = c
        .server
        .kubeconfig(NAMESPACE)
        .replace(&url, &format!("http://127.0.0.1:{port}"));
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    let mut config = c.config.clone();
    config.kubeconfig = Some(path);
    let err = match KubernetesPlatform::connect(config, c.events.clone()).await {
        Ok(_) => panic!("connected to a closed port"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("cannot reach the API server"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("context \"fake\""), "{err}");
}

#[tokio::test]
async fn a_missing_crd_is_reported_as_such() {
    let c = cluster(RouterKind::Traefik).await;
    c.server.faults(|f| {
        f.unserved.insert("traefikservices".into());
    });
    let mut platform = c.connect().await;
    // The first scale sets the initial routing, so the missing kind shows up at once.
    let err = platform.scale(&template("v1"), 1).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message
            .contains("the cluster does not serve traefikservices.traefik.io (context \"fake\")"),
        "{message}"
    );
    assert!(
        message.contains("so patch traefikservices.traefik.io \"web\" in namespace \"zdd-test\""),
        "{message}"
    );
    assert!(message.contains("install its CRDs"), "{message}");
}

/// `(API group, resource)` of a request path, `None` for non-resource URLs like `/version`.
fn group_resource(path: &str) -> Option<(String, String)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", _, "namespaces", _, resource, ..] => Some((String::new(), resource.to_string())),
        ["apis", group, _, "namespaces", _, resource, ..] => {
            Some((group.to_string(), resource.to_string()))
        }
        _ => None,
    }
}

#[tokio::test]
async fn the_rbac_role_grants_exactly_the_verbs_zdd_uses() {
    use std::collections::BTreeSet;

    let mut used: BTreeSet<(String, String, String)> = BTreeSet::new();
    for router in [
        RouterKind::Service,
        RouterKind::Traefik,
        RouterKind::GatewayApi,
    ] {
        let c = cluster(router).await;
        let mut platform = if router == RouterKind::Service {
            // Blue-green: selector, preview Service (created, then deleted), scale-down.
            let mut platform = c.connect().await;
            platform.scale(&template("v1"), 1).await.unwrap();
            platform.wait_ready("v1", 1, WAIT).await.unwrap();
            platform.scale(&template("v2"), 1).await.unwrap();
            platform.wait_ready("v2", 1, WAIT).await.unwrap();
            platform.set_routing(&only("v1", Some("v2"))).await.unwrap();
            platform.set_routing(&only("v2", None)).await.unwrap();
            platform.scale(&template("v1"), 0).await.unwrap();
            platform.wait_running_at_most("v1", 0, WAIT).await.unwrap();
            platform
        } else {
            run_canary(&c).await
        };
        platform.status().await.unwrap();
        let mut requests = c.server.requests();
        if router != RouterKind::Service {
            // Header routes and a mirror, set and removed.
            let managed = cluster(router).await;
            crate::kubernetes_routes::run_managed_routes(&managed).await;
            requests.extend(managed.server.requests());
        }
        for request in requests {
            if let Some((group, resource)) = group_resource(&request.path) {
                let verb = request.verb().to_string();
                if verb == "patch" {
                    // A server-side apply that creates the object is also authorized as create.
                    used.insert((group.clone(), resource.clone(), "create".into()));
                }
                used.insert((group, resource, verb));
            }
        }
    }

    let role_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/kubernetes/rbac/role.yaml");
    let role: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(role_path).unwrap()).unwrap();
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    granted.insert((
                        group.as_str().unwrap().to_string(),
                        resource.as_str().unwrap().to_string(),
                        verb.as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    }
    let missing: Vec<_> = used.difference(&granted).collect();
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(missing.is_empty(), "used but not granted: {missing:?}");
    assert!(unused.is_empty(), "granted but never used: {unused:?}");
}

#[tokio::test]
async fn https_clusters_go_through_rustls_with_one_crypto_provider() {
    // A server that accepts TCP and answers garbage instead of a TLS ServerHello: the client must
    // get as far as the TLS handshake (so rustls has a crypto provider: with two compiled in and
    // none chosen, building the client panics) and report a clear error, not panic.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let garbage = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.write_all(b"HTTP/1.1 400 not tls\r\n\r\n").await;
        }
    });
    let c = cluster(RouterKind::Service).await;
    let text = c
        .server
        .kubeconfig(NAMESPACE)
        .replace(&c.server.url(), &format!("https://127.0.0.1:{port}"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    let mut config = c.config.clone();
    config.kubeconfig = Some(path);
    let err = match KubernetesPlatform::connect(config, c.events.clone()).await {
        Ok(_) => panic!("a garbage server passed for a cluster"),
        Err(err) => err.to_string(),
    };
    garbage.abort();
    assert!(
        err.contains("cannot reach the API server https://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("context \"fake\""), "{err}");
    // rustls itself rejected the answer: TLS was really attempted.
    assert!(err.contains("corrupt message"), "{err}");
}

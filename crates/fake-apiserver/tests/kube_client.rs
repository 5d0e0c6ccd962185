//! The fake API server as kube-rs sees it: the answers, errors and watches zdd relies on.

use std::time::Duration;

use fake_apiserver::store::{DEPLOYMENTS, ENDPOINT_SLICES};
use fake_apiserver::{FakeApiServer, FakeConfig};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use serde_json::json;
use zdd_test_support::poll::eventually;

const NS: &str = "fake-test";

async fn start(config: FakeConfig) -> (FakeApiServer, Client) {
    let server = FakeApiServer::start(config).await.expect("starts");
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig(NS)).expect("valid kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    assert_eq!(config.default_namespace, NS);
    let client = Client::try_from(config).expect("client");
    (server, client)
}

fn service(name: &str, version: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "labels": {"app": "web", "version": version}},
        "spec": {"selector": {"app": "web", "version": version}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .unwrap()
}

fn deployment(name: &str, version: &str, replicas: i32) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": "web", "version": version}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web", "version": version}},
            "template": {
                "metadata": {"labels": {"app": "web", "version": version}},
                "spec": {"containers": [{"name": "web", "image": "demo"}]},
            },
        },
    })
}

/// How long a condition may take to hold.
const PATIENCE: Duration = Duration::from_secs(20);

/// Creates one Service per `(name, version)` and returns the Service API.
async fn create_services(client: &Client, services: &[(&str, &str)]) -> Api<Service> {
    let api: Api<Service> = Api::default_namespaced(client.clone());
    for (name, version) in services {
        api.create(&PostParams::default(), &service(name, version))
            .await
            .unwrap();
    }
    api
}

/// Server-side applies one Deployment per `(name, version, replicas)`, as zdd does, and returns
/// the Deployment API.
async fn apply_deployments(client: &Client, deployments: &[(&str, &str, i32)]) -> Api<Deployment> {
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let params = PatchParams::apply("zdd");
    for (name, version, replicas) in deployments {
        api.patch(
            name,
            &params,
            &Patch::Apply(deployment(name, version, *replicas)),
        )
        .await
        .unwrap();
    }
    api
}

/// Scales a Deployment to zero through its scale subresource.
async fn scale_to_zero(api: &Api<Deployment>, name: &str) {
    api.patch_scale(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 0}})),
    )
    .await
    .unwrap();
}

/// A plain HTTP client for the fake's data plane.
fn http_client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

#[tokio::test]
async fn create_get_list_and_the_real_error_statuses() {
    let (server, client) = start(FakeConfig::default()).await;
    let api: Api<Service> = Api::default_namespaced(client);
    let created = api
        .create(&PostParams::default(), &service("web-v1", "v1"))
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some(NS));
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    api.create(&PostParams::default(), &service("web-v2", "v2"))
        .await
        .unwrap();

    let again = api
        .create(&PostParams::default(), &service("web-v1", "v1"))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = again else {
        panic!("{again:?}")
    };
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );
    assert_eq!(status.message, "services \"web-v1\" already exists");

    let missing = api.get("nope").await.unwrap_err();
    let kube::Error::Api(status) = missing else {
        panic!("{missing:?}")
    };
    assert!(status.is_not_found());
    assert_eq!(status.message, "services \"nope\" not found");
    assert_eq!(api.get_opt("nope").await.unwrap(), None);

    let v2 = api
        .list(&ListParams::default().labels("app=web,version=v2"))
        .await
        .unwrap();
    assert_eq!(
        v2.items.iter().map(|s| s.name_any()).collect::<Vec<_>>(),
        ["web-v2"]
    );
    let not_v2 = api
        .list(&ListParams::default().labels("version!=v2"))
        .await
        .unwrap();
    assert_eq!(not_v2.items.len(), 1);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=web-v1"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);

    server.faults(|f| {
        f.forbidden.insert(("delete".into(), "services".into()));
    });
    let denied = api.delete("web-v1", &Default::default()).await.unwrap_err();
    let kube::Error::Api(status) = denied else {
        panic!("{denied:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "services \"web-v1\" is forbidden: User \"system:serviceaccount:fake-test:zdd\" cannot delete resource \"services\" in API group \"\" in the namespace \"fake-test\""
    );
    // Recorded, with the verb RBAC would check.
    let last = server.requests().pop().unwrap();
    assert_eq!((last.method.as_str(), last.verb()), ("DELETE", "delete"));
}

#[tokio::test]
async fn apply_creates_then_replaces_what_the_manager_applied_and_merge_patch_merges() {
    let (server, client) = start(FakeConfig::default()).await;
    let api: Api<Service> = Api::default_namespaced(client);
    let params = PatchParams::apply("zdd").force();
    let mut object = serde_json::to_value(service("web", "v1")).unwrap();
    let created = api
        .patch("web", &params, &Patch::Apply(&object))
        .await
        .unwrap();
    assert_eq!(created.spec.unwrap().selector.unwrap()["version"], "v1");
    // The manager applies a selector without `version`: the field it no longer sets goes.
    object["spec"]["selector"] = json!({"app": "web"});
    let applied = api
        .patch("web", &params, &Patch::Apply(&object))
        .await
        .unwrap();
    assert_eq!(applied.spec.unwrap().selector.unwrap().len(), 1);
    let merged = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": {"tier": "front"}}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.spec.unwrap().selector.unwrap().len(), 2);
    let request = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(
        request.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(request.query_param("fieldManager").as_deref(), Some("zdd"));

    let missing = api
        .patch(
            "nope",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {}})),
        )
        .await
        .unwrap_err();
    assert!(matches!(missing, kube::Error::Api(s) if s.is_not_found()));
}

#[tokio::test]
async fn watch_replays_from_a_resource_version_and_streams_changes() {
    let (_server, client) = start(FakeConfig::default()).await;
    let api: Api<Service> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &service("web-v1", "v1"))
        .await
        .unwrap();
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    api.create(&PostParams::default(), &service("web-v2", "v2"))
        .await
        .unwrap();

    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    // Created after the list: replayed.
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Added(s)) => assert_eq!(s.name_any(), "web-v2"),
        other => panic!("{other:?}"),
    }
    api.delete("web-v1", &Default::default()).await.unwrap();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Deleted(s)) => assert_eq!(s.name_any(), "web-v1"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_deployment_controller_reports_status_endpoints_and_the_progress_deadline() {
    let (server, client) = start(FakeConfig {
        pod_ready_after: Duration::from_millis(100),
        progress_deadline_cap: Some(Duration::from_secs(1)),
        ..FakeConfig::default()
    })
    .await;
    server.faults(|f| {
        f.never_ready.insert("v2".into());
    });
    create_services(&client, &[("web", "v1")]).await;
    let api = apply_deployments(&client, &[("web-v1", "v1", 2), ("web-v2", "v2", 1)]).await;

    eventually("web-v1 available", PATIENCE, async || {
        let d = api.get("web-v1").await.unwrap();
        let s = d.status.unwrap_or_default();
        s.available_replicas == Some(2) && s.observed_generation == d.metadata.generation
    })
    .await;
    let slice = server
        .object(ENDPOINT_SLICES, NS, "web-fake")
        .expect("endpoint slice");
    let ready = slice["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["conditions"]["ready"] == true)
        .count();
    assert_eq!(ready, 2);

    eventually("web-v2 past its progress deadline", PATIENCE, async || {
        let d = api.get("web-v2").await.unwrap();
        d.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| {
                c.type_ == "Progressing"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            })
    })
    .await;

    // Scale subresource, then the pods terminate and go.
    scale_to_zero(&api, "web-v1").await;
    assert_eq!(
        api.get_scale("web-v1")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(0)
    );
    eventually("web-v1 has no pods", PATIENCE, async || {
        let d = server.object(DEPLOYMENTS, NS, "web-v1").unwrap();
        d["status"]["replicas"] == 0 && d["status"]["terminatingReplicas"] == 0
    })
    .await;
}

#[tokio::test]
async fn the_data_plane_splits_by_weight_exactly() {
    let (server, client) = start(FakeConfig {
        pod_ready_after: Duration::from_millis(50),
        ..FakeConfig::default()
    })
    .await;
    create_services(&client, &[("web-v1", "v1"), ("web-v2", "v2")]).await;
    apply_deployments(&client, &[("web-v1", "v1", 1), ("web-v2", "v2", 1)]).await;
    let route = json!({
        "apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService",
        "metadata": {"name": "web"},
        "spec": {"weighted": {"services": [
            {"name": "web-v1", "port": 80, "weight": 9},
            {"name": "web-v2", "port": 80, "weight": 1},
        ]}},
    });
    server.put(fake_apiserver::store::TRAEFIK_SERVICES, NS, route);
    let url = server.data_plane_url(NS, "web");
    let http = http_client();
    eventually("both versions serve", PATIENCE, async || {
        let ok = |name: &str| {
            server
                .object(ENDPOINT_SLICES, NS, &format!("{name}-fake"))
                .is_some_and(|s| {
                    s["endpoints"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|e| e["conditions"]["ready"] == true))
                })
        };
        ok("web-v1") && ok("web-v2")
    })
    .await;
    let mut v2 = 0;
    for _ in 0..100 {
        let response = http.get(url.parse().unwrap()).await.unwrap();
        assert_eq!(response.status(), 200);
        if response.headers()["x-version"] == "v2" {
            v2 += 1;
        }
    }
    assert_eq!(v2, 10, "9:1 over 100 requests");
    // A Service with no ready endpoint answers 503, as the proxy would.
    let response = http
        .get(server.data_plane_url(NS, "nothing").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn a_lagging_data_plane_drops_requests_when_pods_go_before_it_catches_up() {
    // The negative control of zdd's data-plane check: switch the selector and scale the old
    // version down at once, as a tool without the check would, and the lagging data plane still
    // sends requests to pods that are gone.
    let (server, client) = start(FakeConfig {
        pod_ready_after: Duration::from_millis(50),
        pod_terminate_after: Duration::from_millis(100),
        data_plane_lag: Duration::from_secs(1),
        ..FakeConfig::default()
    })
    .await;
    let services = create_services(&client, &[("web", "v1")]).await;
    let api = apply_deployments(&client, &[("web-v1", "v1", 2), ("web-v2", "v2", 2)]).await;
    let http = http_client();
    let url = server.data_plane_url(NS, "web");
    let get = async || {
        let response = http.get(url.parse().unwrap()).await.unwrap();
        let version = response
            .headers()
            .get("x-version")
            .map(|v| v.to_str().unwrap().to_string());
        (response.status().as_u16(), version)
    };
    eventually(
        "v1 serves through the lagging data plane",
        PATIENCE,
        async || get().await == (200, Some("v1".into())),
    )
    .await;

    let switch = json!({"spec": {"selector": {"app": "web", "version": "v2"}}});
    services
        .patch("web", &PatchParams::default(), &Patch::Merge(switch))
        .await
        .unwrap();
    scale_to_zero(&api, "web-v1").await;
    let mut seen = Vec::new();
    eventually("v2 serves", PATIENCE, async || {
        let answer = get().await;
        seen.push(answer.0);
        answer == (200, Some("v2".into()))
    })
    .await;
    assert!(
        seen.contains(&502),
        "no dropped request although the pods went first: {seen:?}"
    );
}

//! The Kubernetes platform, through kube-rs: [`KubernetesPlatform`] and its [`Platform`] impl.
//!
//! Objects (the manifests in `deploy/kubernetes` use the same names and labels):
//! - Deployment `<app>-<version>`, labels `app`, `version`, `app.kubernetes.io/{name,version,managed-by}`;
//! - Service `<app>` (selector `app`, or `app`+`version` for blue-green);
//! - Service `<app>-preview` (blue-green's preview route);
//! - per-version Services `<app>-<version>` and a TraefikService or HTTPRoute `<app>` for weights;
//! - header routes and a mirror in the IngressRoute and a TraefikService `<app>-mirror`, or in the
//!   HTTPRoute's rules (see `routers/`).

mod apply;
mod config;
mod error;
mod kubeconfig;
mod ledger;
mod nodes;
pub mod objects;
mod routers;
mod status;
mod wait;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use apply::Cluster;
pub use config::KubernetesConfig;
pub use error::KubeError;
use error::Target;
use ledger::Ledger;
use nodes::ClusterNodes;
pub use nodes::MEASURE_A_DRAIN;
use routers::{KubeRouter, RouteObject, StaleObject, backends_in};
use status::{pod_status, progress_deadline_exceeded, ready_endpoints, version_status};
use wait::{Check, WaitEnd, watch_until};

use crate::events::{Event, EventLog};
use crate::model::{
    PlatformStatus, PodStatus, Routing, TrafficPolicy, VersionStatus, VersionTemplate, Weights,
};
use crate::platform::{
    NodeMaintenance, Platform, PlatformError, Result, RouterKind, TrafficAccess,
};

const DEPLOYMENTS: &str = "deployments.apps";
const SERVICES: &str = "services";
const PODS: &str = "pods";
const ENDPOINT_SLICES: &str = "endpointslices.discovery.k8s.io";

pub struct KubernetesPlatform {
    config: KubernetesConfig,
    cluster: Cluster,
    /// How the main route's weights are expressed (`config.router`).
    router: &'static dyn KubeRouter,
    events: EventLog,
    /// Versions whose per-version Service exists (applied in this run).
    version_services: BTreeSet<String>,
    /// The routing last applied by this run (`None` before the first `set_routing`).
    routing: Option<Routing>,
    /// The route objects last applied by this run, by `kind/name`: one that would not change is
    /// not applied again.
    route_objects: BTreeMap<String, serde_json::Value>,
}

impl KubernetesPlatform {
    /// Connects to the cluster (kubeconfig context or in-cluster config) and checks that it answers.
    pub async fn connect(config: KubernetesConfig, events: EventLog) -> Result<Self> {
        if config.router == RouterKind::Builtin {
            return Err(PlatformError::Other(
                "router builtin runs only on the local platform; kubernetes: service, traefik or \
                 gateway-api"
                    .into(),
            ));
        }
        let (kube_config, context) =
            kubeconfig::load_config(config.kubeconfig.as_deref(), config.context.as_deref())
                .await?;
        let namespace = config
            .namespace
            .clone()
            .unwrap_or_else(|| kube_config.default_namespace.clone());
        let url = kube_config.cluster_url.to_string();
        let connect_error = |source| KubeError::Connect {
            context: format!("\"{context}\""),
            url: url.clone(),
            source,
        };
        let client = Client::try_from(kube_config).map_err(connect_error)?;
        let version = client.apiserver_version().await.map_err(connect_error)?;
        tracing::info!(
            "kubernetes: context {context}, namespace {namespace}, server {url} ({})",
            version.git_version
        );
        Ok(KubernetesPlatform {
            router: routers::for_kind(config.router),
            config,
            cluster: Cluster {
                client,
                target: Target { context, namespace },
                ledger: Ledger::default(),
            },
            events,
            version_services: BTreeSet::new(),
            routing: None,
            route_objects: BTreeMap::new(),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.cluster.target.namespace
    }

    pub fn context(&self) -> &str {
        &self.cluster.target.context
    }

    /// The URL the engine can send traffic to to check the data plane; `None` means the engine
    /// waits a fixed delay (`settle_delay`) before each scale-to-zero instead.
    pub fn verify_url(&self) -> Option<&str> {
        self.config.verify_url.as_deref()
    }

    /// Deletes the preview Service (a 404 is fine: it is already gone). `version`: the version it
    /// selected, when it goes because that version is scaled to 0.
    async fn delete_preview_service(&mut self, version: Option<&str>) -> Result<()> {
        let preview_name = objects::preview_service_name(&self.config.app);
        let api: Api<Service> = self.cluster.api();
        let change = format!("Service {preview_name} deleted");
        let deleted = self
            .cluster
            .delete(&api, SERVICES, &preview_name, change)
            .await?;
        if let (true, Some(version)) = (deleted, version) {
            self.events.emit(Event::PreviewServiceDeleted {
                service: preview_name,
                version: version.to_owned(),
            });
        }
        Ok(())
    }

    async fn ensure_version_service(&mut self, version: &str) -> Result<()> {
        if self.version_services.contains(version) {
            return Ok(());
        }
        let name = objects::version_service_name(&self.config.app, version);
        let object = objects::service(&self.config, &name, Some(version));
        let api: Api<Service> = self.cluster.api();
        let change = format!("Service {name} applied");
        self.cluster.apply(&api, SERVICES, &object, change).await?;
        self.version_services.insert(version.to_string());
        Ok(())
    }

    async fn deployment_status(&self, version: &str) -> Result<VersionStatus> {
        let name = objects::deployment_name(&self.config.app, version);
        let api: Api<Deployment> = self.cluster.api();
        let deployment = self.cluster.get(&api, DEPLOYMENTS, &name).await?;
        Ok(deployment
            .map(|d| version_status(version, &d))
            .unwrap_or_else(|| VersionStatus {
                name: version.to_string(),
                ..VersionStatus::default()
            }))
    }

    /// The main route's backends as the cluster keeps them (empty when it keeps no weights).
    async fn read_backends(&self) -> Result<Weights> {
        let Some((crd, pointer)) = self.router.backends_at() else {
            return Ok(Weights::default());
        };
        let api = self.cluster.custom_api(crd);
        let name = objects::route_name(&self.config.app);
        let object = self.cluster.get(&api, &crd.resource(), &name).await?;
        Ok(object
            .map(|o| backends_in(&serde_json::to_value(&o).unwrap_or_default(), pointer))
            .unwrap_or_default())
    }
}

/// The versions whose per-version Service `routing` sends to: weighted ones, header routes' and
/// the mirror's.
fn routed_versions(routing: &Routing) -> BTreeSet<String> {
    let weighted = match &routing.main {
        TrafficPolicy::Weighted(weights) => weights.iter().map(|(v, _)| v.to_owned()).collect(),
        _ => Vec::new(),
    };
    let managed = routing.header_routes.iter().map(|r| r.version.clone());
    let mirrored = routing.mirror.iter().map(|m| m.version.clone());
    weighted
        .into_iter()
        .chain(managed)
        .chain(mirrored)
        .collect()
}

impl Platform for KubernetesPlatform {
    async fn scale(&mut self, version: &VersionTemplate, replicas: u32) -> Result<()> {
        let image = version
            .image
            .clone()
            .ok_or_else(|| KubeError::NoImage(version.name.clone()))?;
        if self.routing.is_none() {
            // A platform starts with the default routing (every ready replica behind the main
            // Service); the engine only tells changes from there.
            self.set_routing(&Routing::default()).await?;
        }
        self.ensure_version_service(&version.name).await?;
        let previewed = self
            .routing
            .as_ref()
            .is_some_and(|r| r.preview.as_ref() == Some(&version.name));
        if replicas == 0 && previewed {
            // A rollback during blue-green's preview: the preview Service must not outlive the
            // version it shows (it would select no pod, or the new version again on a retry).
            self.delete_preview_service(Some(&version.name)).await?;
            if let Some(routing) = self.routing.as_mut() {
                routing.preview = None;
            }
        }
        let name = objects::deployment_name(&self.config.app, &version.name);
        let object = objects::deployment(&self.config, version, &image, replicas);
        let api: Api<Deployment> = self.cluster.api();
        let change = format!("Deployment {name} scaled to {replicas}");
        self.cluster.apply(&api, DEPLOYMENTS, &object, change).await
    }

    async fn wait_ready(
        &mut self,
        version: &str,
        ready: u32,
        timeout: Duration,
    ) -> Result<VersionStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        let app = self.config.app.clone();
        let name = objects::deployment_name(&app, version);
        let events = self.events.clone();

        // 1. The Deployment reports enough available replicas for its current generation.
        let mut last_ready = None;
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let end = watch_until(
            self.cluster.api::<Deployment>(),
            config,
            deadline,
            &format!("deployment {name}"),
            &events,
            |deployments| {
                let Some(d) = deployments.find(|d| d.name_any() == name) else {
                    return Check::Pending(format!("deployment {name} does not exist"));
                };
                let status = version_status(version, &d);
                if last_ready != Some(status.ready) {
                    last_ready = Some(status.ready);
                    events.emit(Event::ReplicasReady {
                        version: version.to_owned(),
                        ready: status.ready,
                        desired: status.desired,
                    });
                }
                let observed = d
                    .status
                    .as_ref()
                    .and_then(|s| s.observed_generation)
                    .unwrap_or(0);
                let current = observed >= d.metadata.generation.unwrap_or(0);
                if current && status.ready >= ready {
                    return Check::Done(status);
                }
                if let Some(message) = progress_deadline_exceeded(&d) {
                    return Check::Fail(message);
                }
                Check::Pending(format!(
                    "{version}: {}/{} replicas ready, {} running",
                    status.ready, status.desired, status.running
                ))
            },
        )
        .await;
        let status = match end {
            WaitEnd::Failed(detail) => {
                let location = self.cluster.target.location();
                return Err(self.cluster.ledger.explain(KubeError::ProgressDeadline {
                    name,
                    location,
                    detail,
                }));
            }
            end => {
                let goal = format!("{ready} ready replicas of deployment {name}");
                end.into_result(&self.cluster, &goal, DEPLOYMENTS, timeout)?
            }
        };

        // 2. The endpoints controller has published them: the Service can route to them.
        let service = objects::version_service_name(&app, version);
        let config =
            watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
        let end = watch_until(
            self.cluster.api::<EndpointSlice>(),
            config,
            deadline,
            &format!("endpointslices of {service}"),
            &events,
            |slices| {
                let endpoints = ready_endpoints(&slices.state());
                if endpoints >= ready as usize {
                    Check::Done(endpoints)
                } else {
                    Check::Pending(format!("{endpoints} ready endpoints in Service {service}"))
                }
            },
        )
        .await;
        let goal = format!("{ready} ready endpoints of service {service}");
        let endpoints = end.into_result(&self.cluster, &goal, ENDPOINT_SLICES, timeout)?;
        self.events.emit(Event::ServiceEndpointsReady {
            version: version.to_owned(),
            service,
            endpoints,
        });
        Ok(status)
    }

    async fn wait_running_at_most(
        &mut self,
        version: &str,
        running: u32,
        timeout: Duration,
    ) -> Result<VersionStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        let app = self.config.app.clone();
        let events = self.events.clone();
        let config = watcher::Config::default().labels(&format!("app={app},version={version}"));
        let end = watch_until(
            self.cluster.api::<Pod>(),
            config,
            deadline,
            &format!("pods of {app}-{version}"),
            &events,
            |pods| {
                let terminating = pods
                    .state_filter(|p| p.metadata.deletion_timestamp.is_some())
                    .len();
                if pods.len() <= running as usize {
                    Check::Done((pods.len() as u32, terminating as u32))
                } else {
                    Check::Pending(format!(
                        "{} pods of {version} exist, {terminating} terminating",
                        pods.len()
                    ))
                }
            },
        )
        .await;
        let goal = format!("at most {running} pods of {app}-{version}");
        let (pods, terminating) = end.into_result(&self.cluster, &goal, PODS, timeout)?;
        // Pods are the truth here: the Deployment's status may lag behind them.
        let mut status = self.deployment_status(version).await?;
        status.running = pods;
        status.terminating = terminating;
        self.events.emit(Event::PodsLeft {
            version: version.to_owned(),
            pods,
            wanted: running,
        });
        Ok(status)
    }

    async fn set_routing(&mut self, routing: &Routing) -> Result<()> {
        if self.routing.as_ref() == Some(routing) {
            return Ok(());
        }
        let app = self.config.app.clone();
        let previous = self.routing.clone();

        // The main Service: `app` only, or `app`+`version` for blue-green.
        let selected = match &routing.main {
            TrafficPolicy::Only(version) => Some(version.as_str()),
            _ => None,
        };
        let previous_selected = previous.as_ref().map(|r| match &r.main {
            TrafficPolicy::Only(version) => Some(version.clone()),
            _ => None,
        });
        if previous_selected.as_ref().map(|s| s.as_deref()) != Some(selected) {
            let object = objects::service(&self.config, &app, selected);
            let what = match selected {
                Some(v) => format!("Service {app} selects version={v}"),
                None => format!("Service {app} selects every version"),
            };
            let api: Api<Service> = self.cluster.api();
            self.cluster.apply(&api, SERVICES, &object, what).await?;
        }

        // Weights and managed routes: one Service per version they name, behind the
        // TraefikService / IngressRoute / HTTPRoute; otherwise the router sends everything to the
        // main Service. The Service router refuses weights and managed routes.
        let route = self.router.objects(&self.config, routing)?;
        for version in routed_versions(routing) {
            self.ensure_version_service(&version).await?;
        }
        let routes = |r: &Routing| (r.main.clone(), r.header_routes.clone(), r.mirror.clone());
        if previous.as_ref().map(routes) != Some(routes(routing)) {
            for RouteObject {
                crd,
                object,
                change,
            } in route
            {
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                let key = format!("{}/{name}", crd.kind);
                if self.route_objects.get(&key) == Some(&object) {
                    continue;
                }
                let (api, resource) = (self.cluster.custom_api(crd), crd.resource());
                self.cluster.apply(&api, &resource, &object, change).await?;
                self.route_objects.insert(key, object);
            }
            // Once nothing routes to them.
            let stale = previous
                .as_ref()
                .map(|previous| self.router.stale(&self.config, previous, routing))
                .unwrap_or_default();
            for StaleObject { crd, name, change } in stale {
                let (api, resource) = (self.cluster.custom_api(crd), crd.resource());
                self.cluster.delete(&api, &resource, &name, change).await?;
                self.route_objects.remove(&format!("{}/{name}", crd.kind));
            }
        }

        // The preview Service: blue-green's second entry point.
        let preview_name = objects::preview_service_name(&app);
        let previous_preview = previous.as_ref().map(|r| r.preview.clone());
        if previous_preview.as_ref() != Some(&routing.preview) {
            match &routing.preview {
                Some(version) => {
                    let object = objects::service(&self.config, &preview_name, Some(version));
                    let api: Api<Service> = self.cluster.api();
                    let change = format!("Service {preview_name} selects version={version}");
                    self.cluster.apply(&api, SERVICES, &object, change).await?;
                }
                None => self.delete_preview_service(None).await?,
            }
        }
        self.routing = Some(routing.clone());
        Ok(())
    }

    async fn status(&mut self) -> Result<PlatformStatus> {
        let app = self.config.app.clone();
        let deployments: Api<Deployment> = self.cluster.api();
        let list = deployments
            .list(
                &ListParams::default()
                    .labels(&format!("app={app},app.kubernetes.io/managed-by=zdd")),
            )
            .await
            .map_err(|e| self.cluster.fail("list", DEPLOYMENTS, None, e))?;
        let pods: Api<Pod> = self.cluster.api();
        let pod_list = pods
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .map_err(|e| self.cluster.fail("list", PODS, None, e))?;
        let pods: Vec<PodStatus> = pod_list.items.iter().map(pod_status).collect();
        let mut versions: Vec<VersionStatus> = list
            .items
            .iter()
            .filter_map(|d| {
                let version = d.labels().get("version")?.clone();
                let mut status = version_status(&version, d);
                let of_version = pods.iter().filter(|p| p.version == version);
                status.running = of_version.clone().count() as u32;
                status.terminating = of_version.filter(|p| p.terminating).count() as u32;
                Some(status)
            })
            .collect();
        versions.sort_by(|a, b| a.name.cmp(&b.name));

        let services: Api<Service> = self.cluster.api();
        let selector_version = |service: Option<Service>| {
            service.and_then(|s| s.spec?.selector?.get("version").cloned())
        };
        let main = self.cluster.get(&services, SERVICES, &app).await?;
        let preview_name = objects::preview_service_name(&app);
        let preview = self.cluster.get(&services, SERVICES, &preview_name).await?;
        let backends = self.read_backends().await?;
        let prefix = format!("{app}-");
        let weighted: Vec<(String, u32)> = backends
            .iter()
            .filter_map(|(service, weight)| {
                Some((service.strip_prefix(&prefix)?.to_string(), weight))
            })
            .collect();
        let main = if !weighted.is_empty() && weighted.len() == backends.0.len() {
            TrafficPolicy::Weighted(Weights(weighted))
        } else {
            match selector_version(main) {
                Some(version) => TrafficPolicy::Only(version),
                None => TrafficPolicy::AllReady,
            }
        };
        Ok(PlatformStatus {
            versions,
            pods,
            routing: Routing {
                main,
                preview: selector_version(preview),
                ..Routing::default()
            },
            // Nodes are not zdd's to list (nor in its RBAC role); each pod names its own.
            nodes: Vec::new(),
        })
    }

    fn nodes(&self) -> Arc<dyn NodeMaintenance> {
        Arc::new(ClusterNodes)
    }

    fn main_url(&self) -> String {
        self.config.verify_url.clone().unwrap_or_else(|| {
            format!(
                "http://{}.{}.svc.cluster.local:{}",
                self.config.app, self.cluster.target.namespace, self.config.service_port
            )
        })
    }

    /// `--verify-url` when given. Without it the in-cluster name of the main Service does not
    /// resolve from where zdd usually runs, so the engine sends no traffic and waits
    /// `settle_delay` before each scale-to-zero.
    fn traffic_access(&self) -> TrafficAccess {
        match &self.config.verify_url {
            Some(url) => TrafficAccess::Url(url.clone()),
            None => TrafficAccess::Unreachable {
                settle_delay: self.config.settle_delay,
            },
        }
    }

    /// The configured preview URL while a preview is routed. The in-cluster name would not be
    /// reachable from where zdd usually runs, so without one there is none.
    fn preview_url(&self) -> Option<String> {
        self.routing.as_ref()?.preview.as_ref()?;
        self.config.preview_url.clone()
    }

    /// Leaves the cluster as the rollout left it: nothing to stop on zdd's side.
    async fn shutdown(&mut self) -> Result<()> {
        Ok(())
    }
}

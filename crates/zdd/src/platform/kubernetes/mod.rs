//! The Kubernetes platform, through kube-rs.
//!
//! Objects (the manifests in `deploy/kubernetes` use the same names and labels):
//! - Deployment `<app>-<version>`, labels `app`, `version`, `app.kubernetes.io/{name,version,managed-by}`;
//! - Service `<app>` (selector `app`, or `app`+`version` for blue-green);
//! - Service `<app>-preview` (blue-green's preview route);
//! - per-version Services `<app>-<version>` and a TraefikService or HTTPRoute `<app>` for weights.

mod error;
pub mod objects;
mod routers;
mod wait;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::Value;

pub use error::KubeError;
use error::Target;
use objects::FIELD_MANAGER;
use routers::{Crd, RouteObject, Router, backends_in};
use wait::{Check, WaitEnd, watch_until};

use crate::events::{Event, EventLog};
use crate::model::{
    PlatformStatus, PodStatus, Routing, TrafficPolicy, VersionStatus, VersionTemplate, Weights,
};
use crate::platform::{Platform, PlatformError, Result, RouterKind, TrafficAccess};

/// Where and what to deploy. Build it with [`KubernetesConfig::new`] and change what differs.
#[derive(Clone, Debug, PartialEq)]
pub struct KubernetesConfig {
    /// The kubeconfig file; `None` = `KUBECONFIG`, else `~/.kube/config`, else in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context; `None` = the current context.
    pub context: Option<String>,
    /// `None` = the context's namespace, else `default`.
    pub namespace: Option<String>,
    /// The app's name: the `app` label and the prefix of every object name.
    pub app: String,
    /// The port the container listens on (probes and Services target it).
    pub container_port: u16,
    /// The port the Services expose.
    pub service_port: u16,
    pub router: RouterKind,
    /// A URL that reaches the main route from where zdd runs (ingress, `minikube service --url`,
    /// port-forward). The engine checks the data plane through it before scaling a version down.
    pub verify_url: Option<String>,
    /// Without `verify_url`, how long the engine waits before scaling a version to 0, instead of
    /// checking with traffic that no request reaches it (see [`TrafficAccess::Unreachable`]).
    pub settle_delay: Duration,
    /// The Gateway an `HTTPRoute` attaches to (`--router gateway-api`).
    pub gateway: String,
    /// The Traefik entry point used by the `IngressRoute` that points at the TraefikService.
    pub traefik_entry_point: String,
    /// A URL that reaches the preview Service from where zdd runs (blue-green).
    pub preview_url: Option<String>,
    /// Each Deployment's `progressDeadlineSeconds`: a version that makes no progress this long is
    /// reported failed by the cluster, and `wait_ready` stops at once.
    pub progress_deadline: Duration,
}

impl KubernetesConfig {
    pub fn new(app: impl Into<String>) -> Self {
        KubernetesConfig {
            kubeconfig: None,
            context: None,
            namespace: None,
            app: app.into(),
            container_port: 8080,
            service_port: 80,
            router: RouterKind::Service,
            verify_url: None,
            settle_delay: Duration::from_secs(10),
            gateway: "zdd-gateway".into(),
            traefik_entry_point: "web".into(),
            preview_url: None,
            progress_deadline: Duration::from_secs(600),
        }
    }
}

const DEPLOYMENTS: &str = "deployments.apps";
const SERVICES: &str = "services";
const PODS: &str = "pods";
const ENDPOINT_SLICES: &str = "endpointslices.discovery.k8s.io";

pub struct KubernetesPlatform {
    config: KubernetesConfig,
    client: Client,
    /// How the main route's weights are expressed (`config.router`).
    router: &'static dyn Router,
    namespace: String,
    /// The kubeconfig context (or `in-cluster`), for error messages.
    context: String,
    events: EventLog,
    /// What this run changed in the cluster, oldest first, so an error can say what it left.
    applied: Vec<String>,
    /// Versions whose per-version Service exists (applied in this run).
    version_services: BTreeSet<String>,
    /// The routing last applied by this run (`None` before the first `set_routing`).
    routing: Option<Routing>,
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
            load_config(config.kubeconfig.as_deref(), config.context.as_deref()).await?;
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
            client,
            namespace,
            context,
            events,
            applied: Vec::new(),
            version_services: BTreeSet::new(),
            routing: None,
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn context(&self) -> &str {
        &self.context
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
        let api: Api<Service> = self.api();
        match api.delete(&preview_name, &DeleteParams::default()).await {
            Ok(_) => {
                self.applied.push(format!("Service {preview_name} deleted"));
                if let Some(version) = version {
                    self.events.emit(Event::PreviewServiceDeleted {
                        service: preview_name,
                        version: version.to_owned(),
                    });
                }
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => {
                Err(self.explain(
                    self.target()
                        .error("delete", SERVICES, Some(&preview_name), e),
                ))
            }
        }
    }

    fn target(&self) -> Target<'_> {
        Target {
            context: &self.context,
            namespace: &self.namespace,
        }
    }

    /// Turns an error into the platform's, adding what this run already changed.
    fn explain(&self, err: KubeError) -> PlatformError {
        if self.applied.is_empty() {
            return PlatformError::Other(format!("{err}. Nothing was changed by this run."));
        }
        let recent: Vec<&str> = self
            .applied
            .iter()
            .rev()
            .take(8)
            .rev()
            .map(String::as_str)
            .collect();
        PlatformError::Other(format!(
            "{err}. Changed by this run so far (last {}): {}",
            recent.len(),
            recent.join("; ")
        ))
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn custom_api(&self, crd: &Crd) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &crd.api_resource())
    }

    /// Server-side apply of `object` (field manager `zdd`, forced: zdd owns what it sets).
    async fn apply<K>(
        &mut self,
        api: &Api<K>,
        resource: &str,
        name: &str,
        object: &Value,
        what: String,
    ) -> Result<K>
    where
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api.patch(name, &params, &Patch::Apply(object)).await {
            Ok(applied) => {
                self.applied.push(what);
                Ok(applied)
            }
            Err(e) => Err(self.explain(self.target().error("patch", resource, Some(name), e))),
        }
    }

    async fn ensure_version_service(&mut self, version: &str) -> Result<()> {
        if self.version_services.contains(version) {
            return Ok(());
        }
        let name = objects::version_service_name(&self.config.app, version);
        let object = objects::service(&self.config, &name, Some(version));
        let api: Api<Service> = self.api();
        self.apply(
            &api,
            SERVICES,
            &name,
            &object,
            format!("Service {name} applied"),
        )
        .await?;
        self.version_services.insert(version.to_string());
        Ok(())
    }

    async fn deployment_status(&self, version: &str) -> Result<VersionStatus> {
        let name = objects::deployment_name(&self.config.app, version);
        let api: Api<Deployment> = self.api();
        let deployment = api
            .get_opt(&name)
            .await
            .map_err(|e| self.explain(self.target().error("get", DEPLOYMENTS, Some(&name), e)))?;
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
        let api = self.custom_api(crd);
        let name = objects::route_name(&self.config.app);
        let object = api.get_opt(&name).await.map_err(|e| {
            self.explain(self.target().error("get", &crd.resource(), Some(&name), e))
        })?;
        Ok(object
            .map(|o| backends_in(&serde_json::to_value(&o).unwrap_or_default(), pointer))
            .unwrap_or_default())
    }
}

async fn load_config(
    path: Option<&Path>,
    context: Option<&str>,
) -> Result<(kube::Config, String), KubeError> {
    let options = KubeConfigOptions {
        context: context.map(String::from),
        ..KubeConfigOptions::default()
    };
    let config_error = |context: &str, message: String| KubeError::Config {
        context: format!("\"{context}\""),
        message,
    };
    if let Some(path) = path {
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
            config_error(
                context.unwrap_or("current"),
                format!("{}: {e}", path.display()),
            )
        })?;
        let name = context
            .map(String::from)
            .or_else(|| kubeconfig.current_context.clone())
            .unwrap_or_default();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| config_error(&name, e.to_string()))?;
        return Ok((config, name));
    }
    if let Some(context) = context {
        let config = kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| config_error(context, e.to_string()))?;
        return Ok((config, context.to_string()));
    }
    let current = Kubeconfig::read()
        .ok()
        .and_then(|k| k.current_context)
        .unwrap_or_else(|| "in-cluster".to_string());
    let config = kube::Config::infer()
        .await
        .map_err(|e| config_error(&current, e.to_string()))?;
    Ok((config, current))
}

fn version_status(version: &str, deployment: &Deployment) -> VersionStatus {
    let status = deployment.status.clone().unwrap_or_default();
    let count = |n: Option<i32>| n.unwrap_or(0).max(0) as u32;
    let terminating = count(status.terminating_replicas);
    VersionStatus {
        name: version.to_string(),
        desired: count(deployment.spec.as_ref().and_then(|s| s.replicas)),
        ready: count(status.available_replicas),
        running: count(status.replicas) + terminating,
        terminating,
    }
}

/// The Deployment's `Progressing` condition says the progress deadline passed.
fn progress_deadline_exceeded(deployment: &Deployment) -> Option<String> {
    let conditions = deployment.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
        .map(|c| c.message.clone().unwrap_or_default())
}

fn pod_status(pod: &Pod) -> PodStatus {
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let restarts = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count.max(0) as u32).sum())
        .unwrap_or(0);
    PodStatus {
        name: pod.name_any(),
        version: pod.labels().get("version").cloned().unwrap_or_default(),
        pid: None,
        port: None,
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        restarts,
    }
}

/// Ready endpoints (by pod) across a Service's EndpointSlices. `ready: null` means ready.
fn ready_endpoints(slices: &[Arc<EndpointSlice>]) -> usize {
    let pods: BTreeSet<String> = slices
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .map(|e| {
            e.target_ref
                .as_ref()
                .and_then(|r| r.name.clone())
                .unwrap_or_else(|| e.addresses.join(","))
        })
        .collect();
    pods.len()
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
        let api: Api<Deployment> = self.api();
        self.apply(
            &api,
            DEPLOYMENTS,
            &name,
            &object,
            format!("Deployment {name} scaled to {replicas}"),
        )
        .await?;
        Ok(())
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
            self.api::<Deployment>(),
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
            WaitEnd::Done(status) => status,
            WaitEnd::Failed(detail) => {
                let location = self.target().location();
                return Err(self.explain(KubeError::ProgressDeadline {
                    name,
                    location,
                    detail,
                }));
            }
            WaitEnd::TimedOut(state) => {
                return Err(PlatformError::Timeout {
                    what: format!(
                        "{ready} ready replicas of deployment {name} {} ({state})",
                        self.target().location()
                    ),
                    waited: timeout,
                });
            }
            WaitEnd::Broken(e) => {
                return Err(self.explain(self.target().error("watch", DEPLOYMENTS, None, e)));
            }
        };

        // 2. The endpoints controller has published them: the Service can route to them.
        let service = objects::version_service_name(&app, version);
        let config =
            watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
        let end = watch_until(
            self.api::<EndpointSlice>(),
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
        match end {
            WaitEnd::Done(endpoints) => {
                self.events.emit(Event::ServiceEndpointsReady {
                    version: version.to_owned(),
                    service: service.clone(),
                    endpoints,
                });
                Ok(status)
            }
            WaitEnd::Failed(detail) | WaitEnd::TimedOut(detail) => Err(PlatformError::Timeout {
                what: format!(
                    "{ready} ready endpoints of service {service} {} ({detail})",
                    self.target().location()
                ),
                waited: timeout,
            }),
            WaitEnd::Broken(e) => {
                Err(self.explain(self.target().error("watch", ENDPOINT_SLICES, None, e)))
            }
        }
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
            self.api::<Pod>(),
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
        match end {
            WaitEnd::Done((pods, terminating)) => {
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
            WaitEnd::Failed(state) | WaitEnd::TimedOut(state) => Err(PlatformError::Timeout {
                what: format!(
                    "at most {running} pods of {app}-{version} {} ({state})",
                    self.target().location()
                ),
                waited: timeout,
            }),
            WaitEnd::Broken(e) => Err(self.explain(self.target().error("watch", PODS, None, e))),
        }
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
            let api: Api<Service> = self.api();
            self.apply(&api, SERVICES, &app, &object, what).await?;
        }

        // Weights: one Service per version behind the TraefikService / HTTPRoute; otherwise the
        // router sends everything to the main Service. The Service router refuses weights.
        let route = self.router.objects(&self.config, &routing.main)?;
        if let TrafficPolicy::Weighted(weights) = &routing.main {
            for (version, _) in weights.iter() {
                self.ensure_version_service(version).await?;
            }
        }
        if previous.as_ref().map(|r| &r.main) != Some(&routing.main) {
            let name = objects::route_name(&app);
            for RouteObject {
                crd,
                object,
                change,
            } in route
            {
                let (api, resource) = (self.custom_api(crd), crd.resource());
                self.apply(&api, &resource, &name, &object, change).await?;
            }
        }

        // The preview Service: blue-green's second entry point.
        let preview_name = objects::preview_service_name(&app);
        let previous_preview = previous.as_ref().map(|r| r.preview.clone());
        if previous_preview.as_ref() != Some(&routing.preview) {
            match &routing.preview {
                Some(version) => {
                    let object = objects::service(&self.config, &preview_name, Some(version));
                    let api: Api<Service> = self.api();
                    self.apply(
                        &api,
                        SERVICES,
                        &preview_name,
                        &object,
                        format!("Service {preview_name} selects version={version}"),
                    )
                    .await?;
                }
                None => self.delete_preview_service(None).await?,
            }
        }
        self.routing = Some(routing.clone());
        Ok(())
    }

    async fn status(&mut self) -> Result<PlatformStatus> {
        let app = self.config.app.clone();
        let deployments: Api<Deployment> = self.api();
        let list = deployments
            .list(
                &ListParams::default()
                    .labels(&format!("app={app},app.kubernetes.io/managed-by=zdd")),
            )
            .await
            .map_err(|e| self.explain(self.target().error("list", DEPLOYMENTS, None, e)))?;
        let pods: Api<Pod> = self.api();
        let pod_list = pods
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .map_err(|e| self.explain(self.target().error("list", PODS, None, e)))?;
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

        let services: Api<Service> = self.api();
        let selector_version = |service: Option<Service>| {
            service.and_then(|s| s.spec?.selector?.get("version").cloned())
        };
        let main = services
            .get_opt(&app)
            .await
            .map_err(|e| self.explain(self.target().error("get", SERVICES, Some(&app), e)))?;
        let preview_name = objects::preview_service_name(&app);
        let preview = services.get_opt(&preview_name).await.map_err(|e| {
            self.explain(self.target().error("get", SERVICES, Some(&preview_name), e))
        })?;
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
            },
        })
    }

    fn main_url(&self) -> String {
        self.config.verify_url.clone().unwrap_or_else(|| {
            format!(
                "http://{}.{}.svc.cluster.local:{}",
                self.config.app, self.namespace, self.config.service_port
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

//! The Kubernetes platform, through kube-rs.
//!
//! Objects (the manifests in `deploy/kubernetes` use the same names and labels):
//! - Deployment `<app>-<version>`, labels `app`, `version`, `app.kubernetes.io/{name,version,managed-by}`;
//! - Service `<app>` (selector `app`, or `app`+`version` for blue-green);
//! - Service `<app>-preview` (blue-green's preview route);
//! - per-version Services `<app>-<version>` and a TraefikService or HTTPRoute `<app>` for weights.

use std::time::Duration;

use crate::engine::events::EventLog;
use crate::platform::{Platform, PlatformStatus, Result, Routing, VersionStatus, VersionTemplate};

/// How weighted traffic is expressed in the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KubeRouter {
    /// Only the Service: weights are not available (selectors and replica ratios are).
    #[default]
    Service,
    /// A Traefik `TraefikService` (`traefik.io/v1alpha1`) with `weighted` services.
    Traefik,
    /// A Gateway API `HTTPRoute` (`gateway.networking.k8s.io/v1`) with weighted `backendRefs`.
    GatewayApi,
}

/// Where and what to deploy. Build it with [`KubernetesConfig::new`] and change what differs.
#[derive(Clone, Debug, PartialEq)]
pub struct KubernetesConfig {
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
    pub router: KubeRouter,
    /// A URL that reaches the main route from where zdd runs (ingress, `minikube service --url`,
    /// port-forward). The engine checks the data plane through it before scaling a version down.
    pub verify_url: Option<String>,
    /// Without `verify_url`, how long a routing change is given to reach the data plane before
    /// `set_routing` returns (a fixed delay, with a warning).
    pub settle_delay: Duration,
    /// The Gateway an `HTTPRoute` attaches to (`--router gateway-api`).
    pub gateway: String,
    /// The Traefik entry point used by the `IngressRoute` that points at the TraefikService.
    pub traefik_entry_point: String,
}

impl KubernetesConfig {
    pub fn new(app: impl Into<String>) -> Self {
        KubernetesConfig {
            context: None,
            namespace: None,
            app: app.into(),
            container_port: 8080,
            service_port: 80,
            router: KubeRouter::Service,
            verify_url: None,
            settle_delay: Duration::from_secs(10),
            gateway: "zdd-gateway".into(),
            traefik_entry_point: "web".into(),
        }
    }
}

pub struct KubernetesPlatform {
    _private: (),
}

impl KubernetesPlatform {
    /// Connects to the cluster (kubeconfig context or in-cluster config) and checks that it answers.
    pub async fn connect(_config: KubernetesConfig, _events: EventLog) -> Result<Self> {
        todo!("kubernetes platform")
    }
}

impl Platform for KubernetesPlatform {
    async fn scale(&mut self, _version: &VersionTemplate, _replicas: u32) -> Result<()> {
        todo!("kubernetes platform")
    }

    async fn wait_ready(
        &mut self,
        _version: &str,
        _ready: u32,
        _timeout: Duration,
    ) -> Result<VersionStatus> {
        todo!("kubernetes platform")
    }

    async fn wait_running_at_most(
        &mut self,
        _version: &str,
        _running: u32,
        _timeout: Duration,
    ) -> Result<VersionStatus> {
        todo!("kubernetes platform")
    }

    async fn set_routing(&mut self, _routing: &Routing) -> Result<()> {
        todo!("kubernetes platform")
    }

    async fn status(&mut self) -> Result<PlatformStatus> {
        todo!("kubernetes platform")
    }

    fn main_url(&self) -> String {
        todo!("kubernetes platform")
    }

    fn preview_url(&self) -> Option<String> {
        todo!("kubernetes platform")
    }

    async fn shutdown(&mut self) -> Result<()> {
        todo!("kubernetes platform")
    }
}

//! [`KubernetesConfig`]: where and what zdd deploys on Kubernetes.

use std::path::PathBuf;
use std::time::Duration;

use crate::platform::RouterKind;

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

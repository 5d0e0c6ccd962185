//! Errors that say where: which context, which namespace, which verb on which object.

use crate::platform::PlatformError;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot load the kubeconfig (context {context}): {message}")]
    Config { context: String, message: String },

    #[error(
        "cannot reach the API server {url} (context {context}): {}",
        chain(source)
    )]
    Connect {
        context: String,
        url: String,
        #[source]
        source: kube::Error,
    },

    #[error(
        "permission denied: cannot {verb} {resource}{name} in namespace \"{namespace}\" (context {context}); \
         grant it with deploy/kubernetes/rbac/ ({message})"
    )]
    Forbidden {
        context: String,
        namespace: String,
        verb: &'static str,
        resource: String,
        /// ` "name"` or empty for collections.
        name: String,
        message: String,
    },

    #[error(
        "the cluster does not serve {resource} (context {context}), so {verb} {resource}{name} in namespace \
         \"{namespace}\" failed: install its CRDs (Traefik or Gateway API) or choose another --router"
    )]
    KindNotServed {
        context: String,
        namespace: String,
        verb: &'static str,
        resource: String,
        name: String,
    },

    #[error(
        "{verb} {resource}{name} in namespace \"{namespace}\" (context {context}) failed: {}",
        chain(source)
    )]
    Api {
        context: String,
        namespace: String,
        verb: &'static str,
        resource: String,
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error(
        "version {0} has no image: the Kubernetes platform runs containers, so the spec must give `image`"
    )]
    NoImage(String),

    #[error(
        "weighted routing needs a router that splits traffic: --router traefik or --router gateway-api"
    )]
    WeightsNeedRouter,

    #[error(
        "header route {0:?} (A/B) needs a router that matches headers: --router traefik or \
         --router gateway-api (a Service selects pods, it does not look at requests)"
    )]
    HeaderRoutesNeedRouter(String),

    #[error(
        "mirror route {0:?} (shadow) needs a router that copies requests: --router traefik or \
         --router gateway-api (a Service selects pods, it does not copy requests)"
    )]
    MirrorNeedsRouter(String),

    #[error("route {route:?} cannot be expressed: {reason}")]
    RouteNotExpressible { route: String, reason: String },

    #[error("deployment {name} {location} exceeded its progress deadline: {detail}")]
    ProgressDeadline {
        name: String,
        /// `in namespace "…" (context "…")`.
        location: String,
        detail: String,
    },
}

/// An error and its causes, `outer: inner: innermost` (kube's own text often stops at "Connect").
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Where a request went, for the error messages.
pub struct Target {
    /// The kubeconfig context (or `in-cluster`).
    pub context: String,
    pub namespace: String,
}

impl Target {
    /// `in namespace "shop" (context "minikube")`, for messages that are not about one request.
    pub fn location(&self) -> String {
        format!(
            "in namespace \"{}\" (context \"{}\")",
            self.namespace, self.context
        )
    }

    /// Classifies a kube error from `verb` on `resource` (`deployments.apps`) named `name`.
    pub fn error(
        &self,
        verb: &'static str,
        resource: &str,
        name: Option<&str>,
        source: kube::Error,
    ) -> KubeError {
        let context = format!("\"{}\"", self.context);
        let name = name.map(|n| format!(" \"{n}\"")).unwrap_or_default();
        if let kube::Error::Api(status) = &source {
            if status.code == 403 {
                return KubeError::Forbidden {
                    context,
                    namespace: self.namespace.to_string(),
                    verb,
                    resource: resource.to_string(),
                    name,
                    message: status.message.clone(),
                };
            }
            // A 404 that is not a Status: the URL itself does not exist, i.e. no such CRD.
            if status.code == 404 && status.reason != "NotFound" {
                return KubeError::KindNotServed {
                    context,
                    namespace: self.namespace.to_string(),
                    verb,
                    resource: resource.to_string(),
                    name,
                };
            }
        }
        KubeError::Api {
            context,
            namespace: self.namespace.to_string(),
            verb,
            resource: resource.to_string(),
            name,
            source,
        }
    }
}

impl From<KubeError> for PlatformError {
    fn from(err: KubeError) -> Self {
        PlatformError::Other(err.to_string())
    }
}

//! Loading the cluster's address and credentials: a kubeconfig file and context, or the in-cluster
//! service account.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::KubeError;

/// The client configuration and the context's name (`in-cluster` without a kubeconfig).
pub async fn load_config(
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

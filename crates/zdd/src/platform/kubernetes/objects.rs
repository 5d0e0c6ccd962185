//! The objects zdd applies, as server-side-apply JSON. Pure functions: every name and label is
//! decided here and nowhere else, so they match `deploy/kubernetes` and can be unit-tested. The
//! route objects that carry weights are built by their router (`routers/`) from these names.

use std::time::Duration;

use serde_json::{Value, json};

use super::KubernetesConfig;
use crate::model::{AntiAffinity, ProbeSpec, Scheduling, TrafficPolicy, VersionTemplate, Weights};

/// The field manager of every apply (`kubectl get -o yaml --show-managed-fields` shows it).
pub const FIELD_MANAGER: &str = "zdd";

pub fn deployment_name(app: &str, version: &str) -> String {
    format!("{app}-{version}")
}

/// The per-version Service: weighted backends and the readiness check's EndpointSlices.
pub fn version_service_name(app: &str, version: &str) -> String {
    format!("{app}-{version}")
}

pub fn preview_service_name(app: &str) -> String {
    format!("{app}-preview")
}

/// The main route's TraefikService, IngressRoute or HTTPRoute: `<app>`, like the main Service.
pub fn route_name(app: &str) -> String {
    app.to_string()
}

/// The TraefikService that mirrors the main route's (`mirroring`), while a mirror route is set.
pub fn mirror_service_name(app: &str) -> String {
    format!("{app}-mirror")
}

/// Kubernetes counts in whole seconds; a shorter non-zero duration rounds up so that it does not
/// turn into "off".
pub fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

pub(super) fn labels(app: &str, version: Option<&str>) -> Value {
    let mut labels = json!({
        "app": app,
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/managed-by": "zdd",
    });
    if let Some(version) = version {
        labels["version"] = json!(version);
        labels["app.kubernetes.io/version"] = json!(version);
    }
    labels
}

fn http_probe(probe: &ProbeSpec, port: u16) -> Value {
    json!({
        "httpGet": {"path": probe.path, "port": port},
        "periodSeconds": whole_seconds(probe.period).max(1),
        "timeoutSeconds": whole_seconds(probe.timeout).max(1),
        "failureThreshold": probe.failure_threshold.max(1),
        "successThreshold": probe.success_threshold.max(1),
        "initialDelaySeconds": whole_seconds(probe.initial_delay),
    })
}

/// Deployment `<app>-<version>`. `image` is the template's (checked by the caller).
pub fn deployment(
    config: &KubernetesConfig,
    template: &VersionTemplate,
    image: &str,
    replicas: u32,
) -> Value {
    let app = config.app.as_str();
    let version = template.name.as_str();
    let env: Vec<Value> = template
        .env
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    let mut container = json!({
        "name": app,
        "image": image,
        "ports": [{"name": "http", "containerPort": config.container_port, "protocol": "TCP"}],
        "env": env,
        "readinessProbe": http_probe(&template.readiness, config.container_port),
    });
    if let Some(liveness) = &template.liveness {
        container["livenessProbe"] = http_probe(liveness, config.container_port);
    }
    let pre_stop = whole_seconds(template.pre_stop_sleep);
    if pre_stop > 0 {
        // The `sleep` action needs no sleep binary in the image (Kubernetes 1.30+).
        container["lifecycle"] = json!({"preStop": {"sleep": {"seconds": pre_stop}}});
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(app, version),
            "labels": labels(app, Some(version)),
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app, "version": version}},
            "minReadySeconds": whole_seconds(template.min_ready),
            "progressDeadlineSeconds": whole_seconds(config.progress_deadline).max(1),
            // One Deployment per version: a template change rolls within the version without
            // losing capacity.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels(app, Some(version))},
                "spec": pod_spec(app, template, container),
            },
        },
    })
}

/// The pod template's spec: the container, its grace period, and where it may be scheduled
/// (anti-affinity and topology spread on `kubernetes.io/hostname`, against every version of the
/// app, as in deploy/kubernetes/base).
fn pod_spec(app: &str, template: &VersionTemplate, container: Value) -> Value {
    let mut spec = json!({
        "terminationGracePeriodSeconds": whole_seconds(template.termination_grace_period),
        "containers": [container],
    });
    let Scheduling {
        anti_affinity,
        max_skew,
    } = template.scheduling;
    let term = json!({
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": {"app": app}},
    });
    match anti_affinity {
        AntiAffinity::None => {}
        AntiAffinity::Preferred => {
            spec["affinity"] = json!({"podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100, "podAffinityTerm": term},
                ],
            }});
        }
        AntiAffinity::Required => {
            spec["affinity"] = json!({"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [term],
            }});
        }
    }
    if let Some(skew) = max_skew {
        spec["topologySpreadConstraints"] = json!([{
            "maxSkew": skew,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": app}},
        }]);
    }
    spec
}

/// A ClusterIP Service `name` selecting `app` (and `version` when given).
pub fn service(config: &KubernetesConfig, name: &str, version: Option<&str>) -> Value {
    let app = config.app.as_str();
    let mut selector = json!({"app": app});
    if let Some(version) = version {
        selector["version"] = json!(version);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels(app, None)},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": config.service_port, "targetPort": config.container_port, "protocol": "TCP"}],
        },
    })
}

/// The backends of the main route, in order: Service names and their weights.
pub type Backends = Weights;

/// The backends that carry `main`: the per-version Services of a weighted split, else the main
/// Service alone.
pub fn backends(app: &str, main: &TrafficPolicy) -> Backends {
    match main {
        TrafficPolicy::Weighted(weights) => weights
            .iter()
            .map(|(version, weight)| (version_service_name(app, version), weight))
            .collect(),
        _ => Weights(vec![(app.to_string(), 1)]),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn template() -> VersionTemplate {
        let probe = ProbeSpec {
            path: "/ready".into(),
            period: Duration::from_millis(500),
            timeout: Duration::from_millis(250),
            failure_threshold: 1,
            success_threshold: 1,
            initial_delay: Duration::ZERO,
        };
        VersionTemplate {
            name: "v2".into(),
            command: vec![],
            image: Some("ghcr.io/example/demo:2".into()),
            env: BTreeMap::from([("VERSION".to_string(), "v2".to_string())]),
            readiness: probe.clone(),
            liveness: Some(ProbeSpec {
                path: "/healthz".into(),
                ..probe
            }),
            pre_stop_sleep: Duration::from_secs(5),
            termination_grace_period: Duration::from_secs(30),
            min_ready: Duration::from_secs(2),
            scheduling: Scheduling::default(),
        }
    }

    #[test]
    fn deployment_carries_names_labels_and_lifecycle() {
        let config = KubernetesConfig::new("web");
        let d = deployment(&config, &template(), "ghcr.io/example/demo:2", 3);
        assert_eq!(d["metadata"]["name"], "web-v2");
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(
            d["spec"]["selector"]["matchLabels"],
            json!({"app": "web", "version": "v2"})
        );
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "zdd");
        assert_eq!(labels["app.kubernetes.io/version"], "v2");
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "ghcr.io/example/demo:2");
        assert_eq!(c["env"], json!([{"name": "VERSION", "value": "v2"}]));
        // Sub-second periods round up, never down to 0.
        assert_eq!(c["readinessProbe"]["periodSeconds"], 1);
        assert_eq!(c["readinessProbe"]["httpGet"]["port"], 8080);
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(c["lifecycle"]["preStop"]["sleep"]["seconds"], 5);
        assert_eq!(
            d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
            30
        );
        assert_eq!(d["spec"]["minReadySeconds"], 2);
    }

    #[test]
    fn deployment_carries_anti_affinity_and_topology_spread_against_every_version() {
        let config = KubernetesConfig::new("web");
        let plain = deployment(&config, &template(), "demo:2", 3);
        let pod = &plain["spec"]["template"]["spec"];
        assert!(pod["affinity"].is_null() && pod["topologySpreadConstraints"].is_null());
        let scheduled = VersionTemplate {
            scheduling: Scheduling {
                anti_affinity: AntiAffinity::Required,
                max_skew: Some(1),
            },
            ..template()
        };
        let d = deployment(&config, &scheduled, "demo:2", 3);
        let pod = &d["spec"]["template"]["spec"];
        let term = &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            [0];
        assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
        assert_eq!(term["labelSelector"]["matchLabels"], json!({"app": "web"}));
        let spread = &pod["topologySpreadConstraints"][0];
        assert_eq!(spread["maxSkew"], 1);
        assert_eq!(spread["whenUnsatisfiable"], "DoNotSchedule");
        let preferred = VersionTemplate {
            scheduling: Scheduling {
                anti_affinity: AntiAffinity::Preferred,
                max_skew: None,
            },
            ..template()
        };
        let d = deployment(&config, &preferred, "demo:2", 3);
        let preferred = &d["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
            [0];
        assert_eq!(preferred["weight"], 100);
    }

    #[test]
    fn blue_green_service_selects_the_version() {
        let config = KubernetesConfig::new("web");
        let s = service(&config, "web", Some("v2"));
        assert_eq!(
            s["spec"]["selector"],
            json!({"app": "web", "version": "v2"})
        );
        assert_eq!(s["spec"]["ports"][0]["port"], 80);
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 8080);
    }
}

//! The object store: JSON objects by kind, namespace and name, one resourceVersion counter, and
//! the history of changes that watches replay from a resourceVersion.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// A resource kind the fake serves. Anything else answers 404, like a cluster without that CRD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kind {
    /// API group; "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// Plural resource name, as in URLs and RBAC rules.
    pub plural: &'static str,
    pub kind: &'static str,
}

impl Kind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, `services`: how kube-apiserver names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

pub const SERVICES: Kind = Kind {
    group: "",
    version: "v1",
    plural: "services",
    kind: "Service",
};
pub const PODS: Kind = Kind {
    group: "",
    version: "v1",
    plural: "pods",
    kind: "Pod",
};
pub const DEPLOYMENTS: Kind = Kind {
    group: "apps",
    version: "v1",
    plural: "deployments",
    kind: "Deployment",
};
pub const ENDPOINT_SLICES: Kind = Kind {
    group: "discovery.k8s.io",
    version: "v1",
    plural: "endpointslices",
    kind: "EndpointSlice",
};
pub const TRAEFIK_SERVICES: Kind = Kind {
    group: "traefik.io",
    version: "v1alpha1",
    plural: "traefikservices",
    kind: "TraefikService",
};
pub const INGRESS_ROUTES: Kind = Kind {
    group: "traefik.io",
    version: "v1alpha1",
    plural: "ingressroutes",
    kind: "IngressRoute",
};
pub const HTTP_ROUTES: Kind = Kind {
    group: "gateway.networking.k8s.io",
    version: "v1",
    plural: "httproutes",
    kind: "HTTPRoute",
};

pub const KINDS: &[Kind] = &[
    SERVICES,
    PODS,
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    TRAEFIK_SERVICES,
    INGRESS_ROUTES,
    HTTP_ROUTES,
];

pub fn find_kind(group: &str, version: &str, plural: &str) -> Option<Kind> {
    KINDS
        .iter()
        .copied()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

/// One change, as a watch sends it.
#[derive(Clone, Debug)]
pub struct Change {
    pub resource_version: u64,
    pub kind: Kind,
    pub namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub event_type: &'static str,
    pub object: Value,
}

#[derive(Default)]
pub struct Store {
    resource_version: u64,
    objects: BTreeMap<ObjectKey, Value>,
    history: Vec<Change>,
    next_uid: u64,
}

pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Civil-from-days (Howard Hinnant), to avoid a date crate for one timestamp format.
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

impl Store {
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    pub fn get(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of `kind` in `namespace` (every namespace when `None`).
    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, _)| k.kind == kind && namespace.is_none_or(|ns| ns == k.namespace))
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// Changes after `resource_version` from history index `from_index` on, oldest first, and
    /// the index to continue from.
    pub fn changes_since(&self, resource_version: u64, from_index: usize) -> (Vec<Change>, usize) {
        let start = from_index.min(self.history.len());
        let changes = self.history[start..]
            .iter()
            .filter(|c| c.resource_version > resource_version)
            .cloned()
            .collect();
        (changes, self.history.len())
    }

    /// Creates or replaces `object`, filling in the metadata the API server owns. `generation`
    /// moves only when `spec` changes, as for the real built-in kinds.
    pub fn put(&mut self, key: ObjectKey, mut object: Value) -> Value {
        self.resource_version += 1;
        let rv = self.resource_version;
        let previous = self.objects.get(&key).cloned();
        let event_type = if previous.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        object["apiVersion"] = json!(key.kind.api_version());
        object["kind"] = json!(key.kind.kind);
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        let meta = &mut object["metadata"];
        meta["name"] = json!(key.name);
        meta["namespace"] = json!(key.namespace);
        meta["resourceVersion"] = json!(rv.to_string());
        match &previous {
            Some(prev) => {
                meta["uid"] = prev["metadata"]["uid"].clone();
                meta["creationTimestamp"] = prev["metadata"]["creationTimestamp"].clone();
                let generation = prev["metadata"]["generation"].as_i64().unwrap_or(1);
                let spec_changed = prev.get("spec") != object.get("spec");
                object["metadata"]["generation"] = json!(if spec_changed {
                    generation + 1
                } else {
                    generation
                });
            }
            None => {
                self.next_uid += 1;
                meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", self.next_uid));
                meta["creationTimestamp"] = json!(now_rfc3339());
                meta["generation"] = json!(1);
            }
        }
        self.history.push(Change {
            resource_version: rv,
            kind: key.kind,
            namespace: key.namespace.clone(),
            event_type,
            object: object.clone(),
        });
        self.objects.insert(key, object.clone());
        object
    }

    pub fn delete(&mut self, key: &ObjectKey) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.history.push(Change {
            resource_version: self.resource_version,
            kind: key.kind,
            namespace: key.namespace.clone(),
            event_type: "DELETED",
            object: object.clone(),
        });
        Some(object)
    }
}

/// A parsed `labelSelector` or `fieldSelector`: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    terms: Vec<Term>,
}

#[derive(Clone, Debug)]
enum Term {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

impl Selector {
    pub fn parse(text: &str) -> Selector {
        let terms = text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                if let Some((k, v)) = t.split_once("!=") {
                    Term::NotEquals(k.trim().into(), v.trim().into())
                } else if let Some((k, v)) = t.split_once("==") {
                    Term::Equals(k.trim().into(), v.trim().into())
                } else if let Some((k, v)) = t.split_once('=') {
                    Term::Equals(k.trim().into(), v.trim().into())
                } else if let Some(k) = t.strip_prefix('!') {
                    Term::NotExists(k.trim().into())
                } else {
                    Term::Exists(t.into())
                }
            })
            .collect();
        Selector { terms }
    }

    /// Matches labels (for a label selector) or `metadata.name`/`metadata.namespace` (for a field
    /// selector; `lookup` decides which).
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|term| match term {
            Term::Equals(k, v) => lookup(k).as_deref() == Some(v.as_str()),
            Term::NotEquals(k, v) => lookup(k).as_deref() != Some(v.as_str()),
            Term::Exists(k) => lookup(k).is_some(),
            Term::NotExists(k) => lookup(k).is_none(),
        })
    }
}

pub fn label_of(object: &Value, key: &str) -> Option<String> {
    object["metadata"]["labels"][key].as_str().map(String::from)
}

pub fn field_of(object: &Value, key: &str) -> Option<String> {
    match key {
        "metadata.name" => object["metadata"]["name"].as_str().map(String::from),
        "metadata.namespace" => object["metadata"]["namespace"].as_str().map(String::from),
        _ => None,
    }
}

/// JSON merge patch (RFC 7386): objects merge, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(patch_map) => {
            if !target.is_object() {
                *target = json!({});
            }
            let target_map = target.as_object_mut().expect("made an object above");
            for (k, v) in patch_map {
                if v.is_null() {
                    target_map.remove(k);
                } else {
                    merge_patch(target_map.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Server-side apply by one field manager that always sends its whole intent: the applied
/// top-level fields replace the stored ones, labels and annotations merge, and `status` stays.
/// (Real SSA tracks ownership per field; with a single manager the result is the same.)
pub fn apply_patch(existing: Option<&Value>, applied: &Value) -> Value {
    let mut result = existing.cloned().unwrap_or_else(|| json!({}));
    if let Value::Object(applied_map) = applied {
        for (k, v) in applied_map {
            match k.as_str() {
                "metadata" => {
                    for field in ["labels", "annotations"] {
                        if let Some(values) = v.get(field) {
                            merge_patch(&mut result["metadata"][field], values);
                        }
                    }
                }
                "status" => {}
                _ => result[k] = v.clone(),
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_matches_equality_inequality_and_existence() {
        let object = json!({"metadata": {"labels": {"app": "web", "version": "v2"}}});
        let labels = |k: &str| label_of(&object, k);
        assert!(Selector::parse("app=web,version=v2").matches(labels));
        assert!(Selector::parse("app==web,version!=v1").matches(labels));
        assert!(!Selector::parse("app=web,version=v1").matches(labels));
        assert!(Selector::parse("app,!other").matches(labels));
        assert!(!Selector::parse("other").matches(labels));
    }

    #[test]
    fn apply_replaces_spec_and_keeps_status() {
        let stored = json!({
            "metadata": {"labels": {"a": "1"}},
            "spec": {"selector": {"app": "web", "version": "v1"}},
            "status": {"x": 1}
        });
        let applied =
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"selector": {"app": "web"}}});
        let result = apply_patch(Some(&stored), &applied);
        assert_eq!(result["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(result["status"], json!({"x": 1}));
        assert_eq!(result["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    }

    #[test]
    fn merge_patch_deletes_nulls_and_merges_objects() {
        let mut target = json!({"spec": {"selector": {"app": "web", "version": "v1"}, "x": 1}});
        merge_patch(
            &mut target,
            &json!({"spec": {"selector": {"version": null}, "x": 2}}),
        );
        assert_eq!(
            target,
            json!({"spec": {"selector": {"app": "web"}, "x": 2}})
        );
    }

    #[test]
    fn generation_moves_only_with_spec() {
        let mut store = Store::default();
        let key = ObjectKey {
            kind: DEPLOYMENTS,
            namespace: "default".into(),
            name: "web-v1".into(),
        };
        store.put(key.clone(), json!({"spec": {"replicas": 1}}));
        let mut with_status = store.get(&key).unwrap().clone();
        with_status["status"] = json!({"replicas": 1});
        let same_spec = store.put(key.clone(), with_status);
        assert_eq!(same_spec["metadata"]["generation"], json!(1));
        let changed = store.put(key.clone(), json!({"spec": {"replicas": 2}}));
        assert_eq!(changed["metadata"]["generation"], json!(2));
        assert_eq!(changed["metadata"]["resourceVersion"], json!("3"));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let ts = now_rfc3339();
        assert_eq!(ts.len(), 20, "{ts}");
        assert!(ts.starts_with("20") && ts.ends_with('Z'), "{ts}");
    }
}

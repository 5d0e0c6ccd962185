//! The HTTP side: kube-apiserver's URL layout, verbs, watch streams and Status errors.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::{
    DEPLOYMENTS, Kind, ObjectKey, Selector, apply_patch, field_of, find_kind, label_of, merge_patch,
};
use crate::{RecordedRequest, Shared};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// A parsed resource URL: `/api/v1/namespaces/{ns}/{plural}[/{name}[/{sub}]]` or
/// `/apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}[/{sub}]]`.
struct Target {
    group: String,
    version: String,
    namespace: String,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_target(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    match rest {
        ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => Some(Target {
            group: group.into(),
            version: version.into(),
            namespace: (*ns).into(),
            plural: (*plural).into(),
            name: tail.first().map(|s| s.to_string()),
            subresource: tail.get(1).map(|s| s.to_string()),
        }),
        _ => None,
    }
}

fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn param(params: &[(String, String)], name: &str) -> Option<String> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn is_true(value: Option<String>) -> bool {
    matches!(value.as_deref(), Some("true" | "1"))
}

/// The RBAC verb a request needs.
pub(crate) fn verb_of(method: &str, path: &str, query: &str) -> &'static str {
    let has_name = parse_target(path).is_some_and(|t| t.name.is_some());
    match method {
        "GET" if has_name => "get",
        "GET" if is_true(param(&query_params(query), "watch")) => "watch",
        "GET" => "list",
        "POST" => "create",
        "PATCH" => "patch",
        "PUT" => "update",
        "DELETE" => "delete",
        _ => "unknown",
    }
}

/// A `Status` error in kube-apiserver's shape.
fn status_error(code: StatusCode, reason: &str, message: String, details: Value) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code.as_u16(),
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn not_found(kind: Kind, name: &str) -> Response {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} \"{name}\" not found", kind.qualified()),
        json!({"name": name, "group": kind.group, "kind": kind.plural}),
    )
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
    shared
        .requests
        .lock()
        .expect("requests poisoned")
        .push(RecordedRequest {
            seq: shared.next_seq(),
            at: shared.started.elapsed(),
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            content_type: content_type.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });

    if path == "/version" {
        return json_response(
            StatusCode::OK,
            &json!({
                "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
                "platform": "linux/amd64",
            }),
        );
    }
    let Some(target) = parse_target(&path) else {
        return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    };
    let unserved = shared
        .faults
        .lock()
        .expect("faults poisoned")
        .unserved
        .contains(&target.plural);
    let kind = find_kind(&target.group, &target.version, &target.plural).filter(|_| !unserved);
    let Some(kind) = kind else {
        // What kube-apiserver answers for a resource whose CRD is not installed.
        return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    };
    let params = query_params(&query);
    let verb = verb_of(method.as_str(), &path, &query);

    let forbidden = shared
        .faults
        .lock()
        .expect("faults poisoned")
        .forbidden
        .contains(&(verb.to_string(), kind.plural.to_string()));
    if forbidden {
        let subject = match &target.name {
            Some(name) => format!("{} \"{name}\"", kind.qualified()),
            None => kind.qualified(),
        };
        return status_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "{subject} is forbidden: User \"system:serviceaccount:{ns}:zdd\" cannot {verb} resource \"{plural}\" in API group \"{group}\" in the namespace \"{ns}\"",
                ns = target.namespace,
                plural = kind.plural,
                group = kind.group,
            ),
            json!({"name": target.name, "group": kind.group, "kind": kind.plural}),
        );
    }

    let key = |name: &str| ObjectKey {
        kind,
        namespace: target.namespace.clone(),
        name: name.to_string(),
    };
    match (method, target.name.as_deref()) {
        (Method::GET, None) if verb == "watch" => watch(shared, kind, &target.namespace, &params),
        (Method::GET, None) => list(&shared, kind, &target.namespace, &params),
        (Method::GET, Some(name)) => {
            let object = shared
                .store
                .lock()
                .expect("store poisoned")
                .get(&key(name))
                .cloned();
            match (object, target.subresource.as_deref()) {
                (None, _) => not_found(kind, name),
                (Some(object), Some("scale")) if kind == DEPLOYMENTS => {
                    json_response(StatusCode::OK, &scale_of(&object))
                }
                (Some(object), None | Some("status")) => json_response(StatusCode::OK, &object),
                (Some(_), Some(_)) => not_found(kind, name),
            }
        }
        (Method::POST, None) => create(&shared, kind, &target.namespace, &body),
        (Method::PATCH, Some(name)) => patch(
            &shared,
            key(name),
            target.subresource.as_deref(),
            content_type.as_deref(),
            &params,
            &body,
        ),
        (Method::DELETE, Some(name)) => match shared.with_store(|s| s.delete(&key(name))) {
            Some(object) => json_response(StatusCode::OK, &object),
            None => not_found(kind, name),
        },
        (method, _) => status_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the fake API server does not implement {method} on {path}"),
            json!({}),
        ),
    }
}

fn scale_of(deployment: &Value) -> Value {
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": deployment["metadata"]["name"],
            "namespace": deployment["metadata"]["namespace"],
            "resourceVersion": deployment["metadata"]["resourceVersion"],
        },
        "spec": {"replicas": deployment["spec"]["replicas"]},
        "status": {"replicas": deployment["status"]["replicas"].as_i64().unwrap_or(0)},
    })
}

struct Filter {
    labels: Selector,
    fields: Selector,
}

impl Filter {
    fn from_params(params: &[(String, String)]) -> Filter {
        Filter {
            labels: Selector::parse(&param(params, "labelSelector").unwrap_or_default()),
            fields: Selector::parse(&param(params, "fieldSelector").unwrap_or_default()),
        }
    }

    fn matches(&self, object: &Value) -> bool {
        self.labels.matches(|k| label_of(object, k)) && self.fields.matches(|k| field_of(object, k))
    }
}

fn list(shared: &Shared, kind: Kind, namespace: &str, params: &[(String, String)]) -> Response {
    let filter = Filter::from_params(params);
    let store = shared.store.lock().expect("store poisoned");
    let items: Vec<Value> = store
        .list(kind, Some(namespace))
        .into_iter()
        .filter(|o| filter.matches(o))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", kind.kind),
            "apiVersion": kind.api_version(),
            "metadata": {"resourceVersion": store.resource_version().to_string()},
            "items": items,
        }),
    )
}

fn parse_body(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body)
        .ok()
        .or_else(|| serde_saphyr::from_slice(body).ok())
        .filter(Value::is_object)
}

fn bad_request(message: String) -> Response {
    status_error(StatusCode::BAD_REQUEST, "BadRequest", message, json!({}))
}

fn create(shared: &Shared, kind: Kind, namespace: &str, body: &[u8]) -> Response {
    let Some(object) = parse_body(body) else {
        return bad_request("the body of the request was not a JSON object".into());
    };
    let Some(name) = object["metadata"]["name"].as_str().map(String::from) else {
        return status_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!(
                "{} \"\" is invalid: metadata.name: Required value",
                kind.kind
            ),
            json!({"group": kind.group, "kind": kind.kind}),
        );
    };
    let key = ObjectKey {
        kind,
        namespace: namespace.into(),
        name: name.clone(),
    };
    let created = shared.with_store(|store| {
        if store.get(&key).is_some() {
            return None;
        }
        let mut object = object;
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
        Some(store.put(key, object))
    });
    match created {
        Some(object) => json_response(StatusCode::CREATED, &object),
        None => status_error(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.qualified()),
            json!({"name": name, "group": kind.group, "kind": kind.plural}),
        ),
    }
}

fn patch(
    shared: &Shared,
    key: ObjectKey,
    subresource: Option<&str>,
    content_type: Option<&str>,
    params: &[(String, String)],
    body: &[u8],
) -> Response {
    let kind = key.kind;
    let Some(patch) = parse_body(body) else {
        return bad_request("the body of the patch was not a JSON or YAML object".into());
    };
    let is_apply = match content_type {
        Some("application/apply-patch+yaml") => true,
        Some("application/merge-patch+json" | "application/strategic-merge-patch+json") => false,
        other => {
            return status_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format: {other:?}"),
                json!({}),
            );
        }
    };
    if is_apply && param(params, "fieldManager").is_none_or(|m| m.is_empty()) {
        return status_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
            json!({}),
        );
    }
    if is_apply && subresource.is_none() {
        let api_version = patch["apiVersion"].as_str().unwrap_or_default();
        let patch_kind = patch["kind"].as_str().unwrap_or_default();
        if api_version != kind.api_version() || patch_kind != kind.kind {
            return bad_request(format!(
                "apply patch is {api_version}/{patch_kind}, the URL is {}/{}",
                kind.api_version(),
                kind.kind
            ));
        }
    }
    let result = shared.with_store(|store| {
        let existing = store.get(&key).cloned();
        if existing.is_none() && !is_apply {
            return None;
        }
        let created = existing.is_none();
        let updated = match subresource {
            None if is_apply => apply_patch(existing.as_ref(), &patch),
            None => {
                let mut object = existing.clone().unwrap_or_default();
                let status = object.get("status").cloned();
                merge_patch(&mut object, &patch);
                // The main resource does not change status; the /status subresource does.
                match status {
                    Some(status) => object["status"] = status,
                    None => {
                        if let Some(map) = object.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
                object
            }
            Some("status") => {
                let mut object = existing.clone().unwrap_or_default();
                merge_patch(&mut object["status"], &patch["status"]);
                object
            }
            Some("scale") if kind == DEPLOYMENTS => {
                let mut object = existing.clone().unwrap_or_default();
                if let Some(replicas) = patch["spec"]["replicas"].as_i64() {
                    object["spec"]["replicas"] = json!(replicas);
                }
                object
            }
            Some(_) => return None,
        };
        let stored = store.put(key.clone(), updated);
        Some((created, stored))
    });
    match (result, subresource) {
        (Some((_, object)), Some("scale")) => json_response(StatusCode::OK, &scale_of(&object)),
        (Some((true, object)), _) => json_response(StatusCode::CREATED, &object),
        (Some((false, object)), _) => json_response(StatusCode::OK, &object),
        (None, _) => not_found(kind, &key.name),
    }
}

/// A watch: chunked JSON lines `{"type": ..., "object": ...}`, from `resourceVersion` on (or
/// the current objects as `ADDED` first when none is given), until `timeoutSeconds`.
fn watch(
    shared: Arc<Shared>,
    kind: Kind,
    namespace: &str,
    params: &[(String, String)],
) -> Response {
    let filter = Filter::from_params(params);
    let bookmarks = is_true(param(params, "allowWatchBookmarks"));
    let send_initial = is_true(param(params, "sendInitialEvents"));
    let timeout = Duration::from_secs(
        param(params, "timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(1800),
    );
    let from_rv: Option<u64> = param(params, "resourceVersion")
        .and_then(|rv| rv.parse().ok())
        .filter(|rv| *rv > 0);
    let namespace = namespace.to_string();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);

    tokio::spawn(async move {
        let mut changed = shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut bookmark_tick = tokio::time::interval(shared.config.bookmark_interval);
        bookmark_tick.reset();
        let line = |event_type: &str, object: &Value| {
            let mut text = json!({"type": event_type, "object": object}).to_string();
            text.push('\n');
            Ok(Bytes::from(text))
        };

        changed.borrow_and_update();
        let (mut seen_rv, mut index, initial) = {
            let store = shared.store.lock().expect("store poisoned");
            match from_rv {
                Some(rv) => (rv, 0, Vec::new()),
                // No resourceVersion: the current objects stand for the history.
                None => (
                    store.resource_version(),
                    store.history_len(),
                    store.list(kind, Some(&namespace)),
                ),
            }
        };
        for object in initial.iter().filter(|o| filter.matches(o)) {
            if tx.send(line("ADDED", object)).await.is_err() {
                return;
            }
        }
        if send_initial {
            let marker = json!({
                "kind": kind.kind, "apiVersion": kind.api_version(),
                "metadata": {"resourceVersion": seen_rv.to_string(),
                             "annotations": {"k8s.io/initial-events-end": "true"}},
            });
            if tx.send(line("BOOKMARK", &marker)).await.is_err() {
                return;
            }
        }

        loop {
            changed.borrow_and_update();
            let (changes, next_index) = shared
                .store
                .lock()
                .expect("store poisoned")
                .changes_since(seen_rv, index);
            index = next_index;
            for change in changes {
                seen_rv = change.resource_version;
                if change.kind != kind
                    || change.namespace != namespace
                    || !filter.matches(&change.object)
                {
                    continue;
                }
                if tx
                    .send(line(change.event_type, &change.object))
                    .await
                    .is_err()
                {
                    return;
                }
                let break_now = {
                    let mut faults = shared.faults.lock().expect("faults poisoned");
                    let armed = faults.break_watch_once.remove(kind.plural);
                    if armed {
                        faults.watches_broken += 1;
                    }
                    armed
                };
                if break_now {
                    // An error mid-body makes hyper drop the connection without the final chunk,
                    // like a proxy or an API server restart cutting the watch.
                    let _ = tx
                        .send(Err(std::io::Error::other("watch cut by fault injection")))
                        .await;
                    return;
                }
            }
            tokio::select! {
                result = changed.changed() => if result.is_err() { return },
                _ = tokio::time::sleep_until(deadline) => return,
                _ = bookmark_tick.tick(), if bookmarks => {
                    let marker = json!({
                        "kind": kind.kind, "apiVersion": kind.api_version(),
                        "metadata": {"resourceVersion": seen_rv.to_string()},
                    });
                    if tx.send(line("BOOKMARK", &marker)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });

    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("static response parts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_core_and_group_urls() {
        let t = parse_target("/api/v1/namespaces/default/services/web").unwrap();
        assert_eq!((t.group.as_str(), t.plural.as_str()), ("", "services"));
        assert_eq!(t.name.as_deref(), Some("web"));
        let t = parse_target("/apis/apps/v1/namespaces/ns1/deployments/web-v1/scale").unwrap();
        assert_eq!((t.group.as_str(), t.namespace.as_str()), ("apps", "ns1"));
        assert_eq!(t.subresource.as_deref(), Some("scale"));
        assert!(parse_target("/apis/apps/v1/deployments").is_none());
    }

    #[test]
    fn verbs_follow_rbac_names() {
        let p = "/apis/apps/v1/namespaces/default/deployments";
        assert_eq!(verb_of("GET", p, "labelSelector=app%3Dweb"), "list");
        assert_eq!(verb_of("GET", p, "watch=true&resourceVersion=3"), "watch");
        assert_eq!(verb_of("GET", &format!("{p}/web-v1"), ""), "get");
        assert_eq!(verb_of("PATCH", &format!("{p}/web-v1"), ""), "patch");
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(
            percent_decode("app%3Dweb%2Cversion%3Dv1"),
            "app=web,version=v1"
        );
        assert_eq!(percent_decode("a+b%2"), "a b%2");
    }
}

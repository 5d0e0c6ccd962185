//! The field table of docs/spec.md, held to the parser: every documented field misspelled at its
//! real depth is refused (exit 2, `file:line:col` of the typo), and every documented default holds
//! when the field is left out and when its parent is written empty.

use std::path::Path;
use std::process::Command;

use serde_json::{Map, Value, json};
use zdd::model::DisruptionBudget;
use zdd::spec::{CanaryStep, Spec, Strategy};

/// One row of the table: its field paths (a row may name several) and its default column.
struct Row {
    paths: Vec<String>,
    default: String,
}

fn rows() -> Vec<Row> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/spec.md");
    let text = std::fs::read_to_string(doc).expect("docs/spec.md");
    let table = text
        .split("## Fields")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Fields section");
    let rows: Vec<Row> = table
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let paths = cells[0]
                .trim_start_matches("| ")
                .split(", ")
                .map(|path| path.trim_matches('`').to_string())
                .collect();
            Row {
                paths,
                default: cells[1].to_string(),
            }
        })
        .collect();
    assert!(
        rows.len() > 30,
        "the Fields table went missing: {rows:?}",
        rows = rows.len()
    );
    rows
}

/// A path's parts; `steps[]` is the first item of the list `steps`.
fn parts(path: &str) -> Vec<&str> {
    path.split('.').collect()
}

/// A valid spec whose strategy fits `path` (the field must be allowed where it goes).
fn base_for(path: &str) -> Value {
    let strategy = match path {
        p if p.starts_with("strategy.blueGreen") => json!({"blueGreen": {}}),
        p if p.contains("steps[].analysis") => {
            json!({"canary": {"steps": [{"analysis": {"duration": "2s"}}]}})
        }
        p if p.contains("setReplicas") => {
            json!({"canary": {"steps": [{"setReplicas": {"from": 1, "to": 1}}]}})
        }
        p if p.contains("setHeaderRoute") => {
            json!({"canary": {"trafficRouting": "weight", "steps": [
                {"setHeaderRoute": {"name": "testers", "match": [{"header": "X-Canary", "exact": "always"}]}}
            ]}})
        }
        p if p.contains("setMirrorRoute") => {
            json!({"canary": {"trafficRouting": "weight", "steps": [
                {"setMirrorRoute": {"name": "shadow", "percentage": 50, "match": [{"header": "X-Canary", "exact": "always"}]}}
            ]}})
        }
        p if p.contains("setWeight") => {
            json!({"canary": {"trafficRouting": "weight", "steps": [{"setWeight": 10}]}})
        }
        p if p.starts_with("strategy.canary") => {
            json!({"canary": {"steps": [{"pause": {"duration": "1s"}}]}})
        }
        p if p.starts_with("strategy.clusterUpgrade") => json!({"clusterUpgrade": {}}),
        _ => json!({"rollingUpdate": {}}),
    };
    let mut spec = json!({
        "name": "web",
        "app": {"command": ["zdd", "serve"], "replicas": 3},
        "versions": {"from": {"name": "v1"}, "to": {"name": "v2"}},
        "strategy": strategy,
    });
    if path.starts_with("analysis")
        || path.contains("steps[].analysis")
        || path.contains("PromotionAnalysis")
    {
        spec["analysis"] = json!({"metrics": [{"name": "ok", "successRate": {"min": "99%"}}]});
    }
    if path.starts_with("traffic.segments") {
        spec["traffic"] = json!({"segments": [
            {"name": "testers", "share": "20%", "headers": {"X-Canary": "always"}}
        ]});
    }
    if path.starts_with("strategy.clusterUpgrade") {
        // A cluster upgrade changes the nodes, not the app: it has no `to`.
        spec["versions"].as_object_mut().unwrap().remove("to");
    }
    spec
}

/// The mapping at `parts` (created on the way), `steps[]` being the list's first item.
fn mapping_at<'a>(spec: &'a mut Value, parts: &[&str]) -> &'a mut Map<String, Value> {
    let mut node = spec;
    for part in parts {
        node = match part.strip_suffix("[]") {
            Some(list) => {
                let items = node
                    .as_object_mut()
                    .expect("a mapping")
                    .entry(list)
                    .or_insert_with(|| json!([{}]));
                &mut items.as_array_mut().expect("a list")[0]
            }
            None => node
                .as_object_mut()
                .expect("a mapping")
                .entry(*part)
                .or_insert_with(|| json!({})),
        };
        if node.is_null() {
            *node = json!({});
        }
    }
    node.as_object_mut().expect("a mapping")
}

/// Block-style YAML, one key per line, so a key's line is its own.
fn yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if map.is_empty() => out.push_str(" {}\n"),
        Value::Object(map) => {
            out.push('\n');
            for (key, value) in map {
                out.push_str(&format!("{pad}{key}:"));
                yaml(value, indent + 2, out);
            }
        }
        Value::Array(items) if items.iter().all(|i| !i.is_object()) => {
            out.push_str(&format!(" {value}\n"));
        }
        Value::Array(items) => {
            out.push('\n');
            for item in items {
                out.push_str(&format!("{pad}-"));
                let mut inner = String::new();
                yaml(item, indent + 2, &mut inner);
                // `- key: value` on the dash's line.
                out.push_str(&format!(" {}", inner.trim_start()));
            }
        }
        scalar => out.push_str(&format!(" {scalar}\n")),
    }
}

fn to_yaml(spec: &Value) -> String {
    let mut out = String::new();
    yaml(spec, 0, &mut out);
    out.trim_start().to_string()
}

/// `replicas` → `replcas`: a letter dropped (short names get one added).
fn misspelled(key: &str) -> String {
    if key.len() > 4 {
        let (head, tail) = key.split_at(key.len() / 2);
        format!("{head}{}", &tail[1..])
    } else {
        format!("{key}x")
    }
}

fn zdd_rollout(dir: &Path, text: &str) -> (Option<i32>, String) {
    let file = dir.join("spec.yaml");
    std::fs::write(&file, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_zdd"))
        .args(["rollout", "-f", "spec.yaml", "--run-dir", "run"])
        .current_dir(dir)
        .output()
        .expect("run zdd");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn every_documented_field_misspelled_at_its_depth_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for row in rows() {
        for path in &row.paths {
            let parts = parts(path);
            let (leaf, parent) = parts.split_last().unwrap();
            let leaf = leaf.trim_end_matches("[]");
            let typo = misspelled(leaf);
            let mut spec = base_for(path);
            mapping_at(&mut spec, parent).insert(typo.clone(), json!("1s"));
            let text = to_yaml(&spec);
            let (code, stderr) = zdd_rollout(dir.path(), &text);
            assert_eq!(code, Some(2), "{path}: {stderr}\n{text}");
            let typo_line = text
                .lines()
                .position(|line| {
                    line.trim_start()
                        .trim_start_matches("- ")
                        .starts_with(&format!("{typo}:"))
                })
                .unwrap()
                + 1;
            let position = format!("spec.yaml:{typo_line}:");
            assert!(
                stderr.starts_with(&position),
                "{path}: expected the error at line {typo_line} (the typo `{typo}`), got: {stderr}\n{text}"
            );
            assert_eq!(stderr.lines().count(), 1, "{path}: one line: {stderr}");
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} fields checked");
}

/// The value in force of a documented field, written as the table writes defaults.
fn value_of(spec: &Spec, path: &str) -> Option<String> {
    let duration = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let env = |env: &std::collections::BTreeMap<String, String>| {
        if env.is_empty() {
            "{}".to_string()
        } else {
            format!("{env:?}")
        }
    };
    let liveness = || spec.app.liveness.clone().expect("a liveness probe");
    Some(match path {
        "app.replicas" => spec.app.replicas.to_string(),
        "app.env" => env(&spec.app.env),
        "app.readinessProbe.path" => spec.app.readiness.path.clone(),
        "app.readinessProbe.period" => duration(spec.app.readiness.period),
        "app.readinessProbe.timeout" => duration(spec.app.readiness.timeout),
        "app.readinessProbe.failureThreshold" => spec.app.readiness.failure_threshold.to_string(),
        "app.readinessProbe.successThreshold" => spec.app.readiness.success_threshold.to_string(),
        "app.readinessProbe.initialDelay" => duration(spec.app.readiness.initial_delay),
        "app.livenessProbe.path" => liveness().path,
        "app.livenessProbe.period" => duration(liveness().period),
        "app.livenessProbe.timeout" => duration(liveness().timeout),
        "app.livenessProbe.failureThreshold" => liveness().failure_threshold.to_string(),
        "app.livenessProbe.successThreshold" => liveness().success_threshold.to_string(),
        "app.livenessProbe.initialDelay" => duration(liveness().initial_delay),
        "app.preStop.sleep" => duration(spec.app.pre_stop_sleep),
        "app.terminationGracePeriod" => duration(spec.app.termination_grace_period),
        "versions.from.env" => env(&spec.from.env),
        "versions.to.env" => env(&spec.to.as_ref().expect("a new version").env),
        "app.podAntiAffinity" => spec.app.scheduling.anti_affinity.name().into(),
        "app.topologySpread.maxSkew" => spec
            .app
            .scheduling
            .max_skew
            .map_or("none".into(), |skew| skew.to_string()),
        "app.podDisruptionBudget.maxUnavailable" => match spec.app.disruption_budget {
            Some(DisruptionBudget::MaxUnavailable(max)) => max.to_string(),
            other => format!("{other:?}"),
        },
        "local.nodes" => spec.local.nodes.to_string(),
        "traffic.rate" => spec.traffic.rate.to_string(),
        "traffic.path" => spec.traffic.path.clone(),
        "traffic.connections" => {
            let probe_timeout = std::time::Duration::from_secs(2);
            let connections = spec.traffic.connections_for(probe_timeout);
            if connections == (spec.traffic.rate as usize * 2).max(64) {
                "rate × 2s".into()
            } else {
                connections.to_string()
            }
        }
        "budget.maxFailed" => spec
            .budget
            .max_failed
            .map_or("null".into(), |n| n.to_string()),
        "local.propagationDelay" => duration(spec.local.propagation_delay),
        "dataPlaneCheck.window" => duration(spec.data_plane_check.window),
        "dataPlaneCheck.minRequests" => spec.data_plane_check.min_requests.to_string(),
        "dataPlaneCheck.timeout" => duration(spec.data_plane_check.timeout),
        "analysis.interval" => duration(spec.analysis.as_ref()?.interval),
        "analysis.failureLimit" => spec.analysis.as_ref()?.failure_limit.to_string(),
        "analysis.inconclusiveLimit" => spec.analysis.as_ref()?.inconclusive_limit.to_string(),
        "analysis.minRequests" => spec.analysis.as_ref()?.min_requests.to_string(),
        "analysis.startingStep" => spec.analysis.as_ref()?.starting_step.to_string(),
        _ => match (&spec.strategy, path) {
            (Strategy::RollingUpdate { max_surge, .. }, "strategy.rollingUpdate.maxSurge") => {
                max_surge.to_string()
            }
            (
                Strategy::RollingUpdate {
                    max_unavailable, ..
                },
                "strategy.rollingUpdate.maxUnavailable",
            ) => max_unavailable.to_string(),
            (
                Strategy::RollingUpdate { min_ready, .. },
                "strategy.rollingUpdate.minReadySeconds",
            ) => min_ready.as_secs().to_string(),
            (Strategy::BlueGreen { auto_promote, .. }, "strategy.blueGreen.autoPromote") => {
                auto_promote.to_string()
            }
            (Strategy::BlueGreen { preview_checks, .. }, "strategy.blueGreen.previewChecks") => {
                preview_checks.to_string()
            }
            (
                Strategy::ClusterUpgrade { node_downtime, .. },
                "strategy.clusterUpgrade.nodeDowntime",
            ) => duration(*node_downtime),
            (
                Strategy::ClusterUpgrade {
                    eviction_timeout, ..
                },
                "strategy.clusterUpgrade.evictionTimeout",
            ) => duration(*eviction_timeout),
            (Strategy::CanaryReplicas { .. }, "strategy.canary.trafficRouting") => {
                "replicas".into()
            }
            (Strategy::CanaryReplicas { steps }, "strategy.canary.steps[].pause.duration") => {
                match steps.first() {
                    Some(CanaryStep::Pause(None)) => "until `zdd promote`".into(),
                    other => format!("{other:?}"),
                }
            }
            _ => return None,
        },
    })
}

/// The default column when it is a value: a backticked literal, or "until `zdd promote`".
fn documented_default(default: &str) -> Option<String> {
    if default == "until `zdd promote`" {
        return Some(default.to_string());
    }
    let literal = default.strip_prefix('`')?.strip_suffix('`')?;
    // `app.command` and the like name another field, not a value.
    (!literal.contains('.')).then(|| literal.to_string())
}

#[test]
fn every_documented_default_holds_when_left_out_and_when_its_parent_is_empty() {
    let rows = rows();
    let required: Vec<&str> = rows
        .iter()
        .filter(|row| row.default.starts_with("required"))
        .flat_map(|row| row.paths.iter().map(String::as_str))
        .collect();
    let mut checked = 0;
    for row in &rows {
        let Some(default) = documented_default(&row.default) else {
            continue;
        };
        for path in &row.paths {
            let parts = parts(path);
            let (leaf, parent) = parts.split_last().unwrap();
            let parent_path = parent.join(".");
            // A documented sibling, written with its own default, keeps the parent non-empty.
            let sibling = rows
                .iter()
                .flat_map(|r| r.paths.iter().map(move |p| (p, r)))
                .find(|(p, r)| {
                    *p != path
                        && p.rsplit_once('.').map(|(parent, _)| parent)
                            == Some(parent_path.as_str())
                        && documented_default(&r.default)
                            .is_some_and(|d| d != "{}" && !d.contains(' '))
                });
            let mut cases = Vec::new();
            // 1. Left out: the parent holds a sibling only (or nothing at all).
            let mut spec = base_for(path);
            let without = mapping_at(&mut spec, parent);
            without.remove(leaf.trim_end_matches("[]"));
            if let Some((sibling, row)) = &sibling {
                let name = sibling.rsplit('.').next().unwrap();
                let value = documented_default(&row.default).unwrap();
                let value = value.parse::<Value>().unwrap_or(Value::String(value));
                without.insert(name.to_string(), value);
            }
            cases.push(("left out", spec));
            // 2. The parent written empty, when nothing in it is required (app's command moves
            // to the versions for that).
            let parent_required = required
                .iter()
                .any(|r| r.rsplit_once('.').map(|(p, _)| p) == Some(parent_path.as_str()));
            if !parent.is_empty() && !parent_required {
                let mut spec = base_for(path);
                if parent_path == "app" {
                    for version in ["from", "to"] {
                        spec["versions"][version]["command"] = json!(["zdd", "serve"]);
                    }
                }
                mapping_at(&mut spec, parent).clear();
                cases.push(("parent empty", spec));
            }
            for (case, spec) in cases {
                let text = to_yaml(&spec);
                let parsed = Spec::parse(&text, "spec.yaml")
                    .unwrap_or_else(|err| panic!("{path} ({case}): {err}\n{text}"));
                let value = value_of(&parsed, path).unwrap_or_else(|| {
                    panic!(
                        "{path}: documented with default {default}, but this test cannot read it"
                    )
                });
                assert_eq!(value, default, "{path} ({case}):\n{text}");
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "only {checked} defaults checked");
}

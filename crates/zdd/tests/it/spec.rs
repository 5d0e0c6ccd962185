//! Bad specs are refused before anything starts: one message with file, line, column and field
//! path, exit code 2. Good specs (every file in examples/) parse.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::Run;
use zdd::model::{AntiAffinity, DisruptionBudget};
use zdd::spec::{CanaryStep, IntOrPercent, Spec, Strategy};
use zdd_test_support::run::text;

const GOOD: &str = r#"name: demo
app:
  command: ["zdd", "serve"]
  replicas: 3
  env: { DRAIN_DELAY: 1s }
  readinessProbe: { path: /readyz, period: 500ms }
  preStop: { sleep: 2s }
  terminationGracePeriod: 30s
versions:
  from: { name: v1, env: { APP_VERSION: v1 } }
  to: { name: v2, env: { APP_VERSION: v2 } }
strategy:
  rollingUpdate: { maxSurge: 1, maxUnavailable: 0 }
traffic: { rate: 200, path: / }
budget: { maxFailed: 0 }
local: { propagationDelay: 1s }
"#;

/// The strategy block of [`GOOD`].
const GOOD_STRATEGY: &str = "  rollingUpdate: { maxSurge: 1, maxUnavailable: 0 }";

/// [`GOOD`] with another strategy block.
fn with_strategy(strategy: &str) -> String {
    GOOD.replace(GOOD_STRATEGY, strategy)
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Parses `text` and returns the one-line error.
fn error_of(text: &str) -> String {
    match Spec::parse(text, "x.yaml") {
        Ok(spec) => panic!("accepted a bad spec: {spec:?}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn the_reference_spec_parses_with_its_values() {
    let spec = Spec::parse(GOOD, "good.yaml").expect("valid spec");
    assert_eq!(spec.name, "demo");
    assert_eq!(spec.app.replicas, 3);
    assert_eq!(spec.app.pre_stop_sleep, Duration::from_secs(2));
    assert_eq!(spec.app.readiness.period, Duration::from_millis(500));
    assert_eq!(spec.from.name, "v1");
    let to = spec.to.as_ref().expect("a new version");
    assert_eq!(to.env["APP_VERSION"], "v2");
    assert_eq!(
        spec.strategy,
        Strategy::RollingUpdate {
            max_surge: IntOrPercent::Count(1),
            max_unavailable: IntOrPercent::Count(0),
            min_ready: Duration::ZERO,
        }
    );
    let template = spec.template(to);
    assert_eq!(template.env["APP_VERSION"], "v2");
    assert_eq!(template.env["DRAIN_DELAY"], "1s");
    assert_eq!(template.command, vec!["zdd", "serve"]);
}

#[test]
fn every_example_parses() {
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let spec = Spec::load(&path).unwrap_or_else(|e| panic!("{e}"));
            kinds.push(spec.strategy.kind());
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ab-header",
            "blue-green",
            "canary-replicas",
            // canary-weight.yaml, and canary-analysis.yaml (the same judged by analysis).
            "canary-weight",
            "canary-weight",
            "cluster-upgrade",
            "recreate",
            "rolling-update",
            "shadow"
        ]
    );
}

#[test]
fn canary_steps_and_pauses_parse() {
    let text = with_strategy(
        "  canary:\n    trafficRouting: weight\n    steps:\n      - setWeight: 20\n      - pause: 5s\n      - pause: { duration: 1s }\n      - pause: {}\n",
    );
    let spec = Spec::parse(&text, "x.yaml").expect("valid");
    assert_eq!(
        spec.strategy,
        Strategy::CanaryWeight {
            steps: vec![
                CanaryStep::SetWeight(20),
                CanaryStep::Pause(Some(Duration::from_secs(5))),
                CanaryStep::Pause(Some(Duration::from_secs(1))),
                CanaryStep::Pause(None),
            ]
        }
    );
}

/// [`GOOD`] as a cluster upgrade of 3 nodes: `versions.to` gone.
fn cluster_upgrade(app_extra: &str) -> String {
    with_strategy("  clusterUpgrade: { nodeDowntime: 2s }")
        .replace("  to: { name: v2, env: { APP_VERSION: v2 } }\n", "")
        .replace(
            "  terminationGracePeriod: 30s\n",
            &format!("  terminationGracePeriod: 30s\n{app_extra}"),
        )
        .replace(
            "local: { propagationDelay: 1s }",
            "local: { propagationDelay: 1s, nodes: 3 }",
        )
}

#[test]
fn a_cluster_upgrade_has_nodes_scheduling_and_a_budget_and_no_new_version() {
    let text = cluster_upgrade(
        "  podAntiAffinity: required\n  topologySpread: {}\n  podDisruptionBudget: { minAvailable: \"50%\" }\n",
    );
    let spec = Spec::parse(&text, "x.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.to, None);
    assert_eq!(spec.local.nodes, 3);
    assert_eq!(spec.app.scheduling.anti_affinity, AntiAffinity::Required);
    assert_eq!(spec.app.scheduling.max_skew, Some(1));
    assert_eq!(
        spec.app.disruption_budget,
        Some(DisruptionBudget::MinAvailable(IntOrPercent::Percent(50)))
    );
    assert_eq!(
        spec.strategy,
        Strategy::ClusterUpgrade {
            node_downtime: Duration::from_secs(2),
            eviction_timeout: Duration::from_secs(60),
        }
    );
    // The version's template carries the scheduling, as a pod template does.
    assert_eq!(spec.template(&spec.from).scheduling, spec.app.scheduling);
}

#[test]
fn versions_to_is_required_by_a_rollout_and_refused_by_a_cluster_upgrade() {
    let missing = error_of(&GOOD.replace("  to: { name: v2, env: { APP_VERSION: v2 } }\n", ""));
    assert!(
        missing.starts_with("x.yaml:10:3: versions.to: missing"),
        "{missing}"
    );
    let given = error_of(
        &with_strategy("  clusterUpgrade: {}")
            .replace("local: { propagationDelay: 1s }", "local: { nodes: 2 }"),
    );
    assert!(
        given.starts_with("x.yaml:11:7: versions.to: a cluster upgrade"),
        "{given}"
    );
}

#[test]
fn scheduling_and_budget_values_are_checked() {
    let both = error_of(&cluster_upgrade(
        "  podDisruptionBudget: { minAvailable: 2, maxUnavailable: 1 }\n",
    ));
    assert!(
        both.contains(
            "app.podDisruptionBudget.maxUnavailable: give minAvailable or maxUnavailable, not both"
        ),
        "{both}"
    );
    let skew = error_of(&cluster_upgrade("  topologySpread: { maxSkew: 0 }\n"));
    assert!(
        skew.contains("app.topologySpread.maxSkew: must be at least 1"),
        "{skew}"
    );
    let affinity = error_of(&cluster_upgrade("  podAntiAffinity: requird\n"));
    assert!(affinity.contains("did you mean `required`?"), "{affinity}");
    let nodes = error_of(&cluster_upgrade("").replace("nodes: 3", "nodes: 0"));
    assert!(
        nodes.contains("local.nodes: 0 is outside 1..=100 nodes"),
        "{nodes}"
    );
    let percent = error_of(&cluster_upgrade(
        "  podDisruptionBudget: { maxUnavailable: \"150%\" }\n",
    ));
    assert!(
        percent.contains("neither a count nor a percentage"),
        "{percent}"
    );
}

#[test]
fn percentages_resolve_like_the_deployment_controller() {
    assert_eq!(IntOrPercent::Percent(25).resolve(3, true), 1);
    assert_eq!(IntOrPercent::Percent(25).resolve(3, false), 0);
    assert_eq!(IntOrPercent::Percent(50).resolve(4, false), 2);
}

#[test]
fn unknown_field_names_its_path_and_position() {
    let text = GOOD.replace("  replicas: 3\n", "  replicas: 3\n  replica: 4\n");
    let err = error_of(&text);
    assert!(err.starts_with("x.yaml:5:3: app.replica: "), "{err}");
    assert!(err.contains("unknown field `replica`"), "{err}");
}

#[test]
fn wrong_type_names_its_path_and_position() {
    let err = error_of(&GOOD.replace("replicas: 3", "replicas: three"));
    assert!(err.starts_with("x.yaml:4:13: app.replicas: "), "{err}");
}

#[test]
fn weight_outside_0_to_100_is_refused() {
    let text = with_strategy(
        "  canary:\n    trafficRouting: weight\n    steps:\n      - setWeight: 20\n      - setWeight: 150\n",
    );
    let err = error_of(&text);
    assert!(
        err.starts_with("x.yaml:17:20: strategy.canary.steps[1].setWeight: "),
        "{err}"
    );
    assert!(err.contains("outside 0..=100"), "{err}");
    let negative = error_of(&text.replace("150", "-5"));
    assert!(negative.contains("weight -5 is outside"), "{negative}");
}

#[test]
fn max_surge_and_max_unavailable_both_zero_is_refused() {
    let err = error_of(&GOOD.replace("maxSurge: 1", "maxSurge: 0"));
    assert!(
        err.starts_with("x.yaml:13:30: strategy.rollingUpdate.maxSurge: "),
        "{err}"
    );
    assert!(err.contains("both 0"), "{err}");
    // Percentages that round to zero count as zero.
    let rounded = error_of(&GOOD.replace("maxSurge: 1", "maxSurge: 0%"));
    assert!(rounded.contains("both 0"), "{rounded}");
}

#[test]
fn missing_command_is_refused() {
    let err = error_of(&GOOD.replace("  command: [\"zdd\", \"serve\"]\n", ""));
    assert!(err.starts_with("x.yaml:3:3: app.command: missing"), "{err}");
    let empty = error_of(&GOOD.replace("[\"zdd\", \"serve\"]", "[]"));
    assert!(empty.starts_with("x.yaml:3:12: app.command: "), "{empty}");
}

#[test]
fn a_command_per_version_is_enough() {
    let text = GOOD
        .replace("  command: [\"zdd\", \"serve\"]\n", "")
        .replace(
            "from: { name: v1,",
            "from: { name: v1, command: [\"python3\", \"-m\", \"http.server\", \"{port}\"],",
        )
        .replace(
            "to: { name: v2,",
            "to: { name: v2, command: [\"python3\", \"-m\", \"http.server\", \"{port}\"],",
        );
    let spec = Spec::parse(&text, "x.yaml").expect("valid");
    assert_eq!(spec.template(&spec.from).command[0], "python3");
}

#[test]
fn bad_duration_is_refused() {
    let err = error_of(&GOOD.replace("sleep: 2s", "sleep: 2 parsecs"));
    assert!(err.starts_with("x.yaml:7:21: app.preStop.sleep: "), "{err}");
    assert!(err.contains("not a duration"), "{err}");
}

#[test]
fn grace_period_shorter_than_pre_stop_is_refused() {
    let err = error_of(&GOOD.replace("terminationGracePeriod: 30s", "terminationGracePeriod: 1s"));
    assert!(err.contains("app.terminationGracePeriod: "), "{err}");
}

#[test]
fn two_strategies_are_refused() {
    let text = with_strategy("  recreate: {}\n  rollingUpdate: { maxSurge: 1 }");
    let err = error_of(&text);
    assert!(err.contains("exactly one strategy"), "{err}");
}

#[test]
fn unknown_strategy_is_refused() {
    let err = error_of(&GOOD.replace("rollingUpdate: {", "rollingUpdates: {"));
    assert!(err.starts_with("x.yaml:13:3: strategy: "), "{err}");
    assert!(
        err.contains("unknown `rollingUpdates`: did you mean `rollingUpdate`?"),
        "{err}"
    );
}

#[test]
fn a_pre_stop_longer_than_the_default_grace_period_is_refused() {
    // The grace period is not written: its default (30s) is what the rule is checked against.
    let text = GOOD
        .replace("  terminationGracePeriod: 30s\n", "")
        .replace("preStop: { sleep: 2s }", "preStop: { sleep: 40s }");
    assert!(!text.contains("terminationGracePeriod"), "{text}");
    let err = error_of(&text);
    assert!(
        err.contains("app.preStop.sleep: the grace period (30s)"),
        "{err}"
    );
}

#[test]
fn errors_give_their_position_once_and_say_what_to_do() {
    let twice = error_of(&GOOD.replace("  replicas: 3\n", "  replicas: 3\n  replicas: 4\n"));
    assert!(
        twice.contains("app.replicas: `replicas` is written twice here; keep one"),
        "{twice}"
    );
    let not_a_number = error_of(&GOOD.replace("replicas: 3", "replicas: three"));
    assert!(
        not_a_number.ends_with("app.replicas: expected a whole number (0 or more)"),
        "{not_a_number}"
    );
    for err in [twice, not_a_number] {
        assert!(!err.contains(" at line "), "position given twice: {err}");
        assert!(
            !err.contains("DuplicateKeyPolicy"),
            "library internals: {err}"
        );
    }
}

#[test]
fn same_version_names_are_refused() {
    let err = error_of(&GOOD.replace("name: v2", "name: v1"));
    assert!(err.contains("versions.to.name: "), "{err}");
}

#[test]
fn set_weight_without_weight_routing_is_refused() {
    let text = with_strategy("  canary:\n    steps:\n      - setWeight: 20\n");
    let err = error_of(&text);
    assert!(
        err.contains("strategy.canary.steps[0].setWeight: "),
        "{err}"
    );
    assert!(err.contains("trafficRouting: weight"), "{err}");
}

/// The binary: exit 2, the one message on stderr, and no run directory (nothing started).
#[test]
fn zdd_rollout_refuses_a_bad_spec_with_exit_code_2_and_starts_nothing() {
    let run = Run::new("spec-refused");
    let cases = [
        (
            "unknown-field.yaml",
            GOOD.replace("  replicas: 3\n", "  replicas: 3\n  replica: 4\n"),
            "app.replica",
        ),
        (
            "wrong-type.yaml",
            GOOD.replace("replicas: 3", "replicas: three"),
            "app.replicas",
        ),
        (
            "weight.yaml",
            with_strategy(
                "  canary:\n    trafficRouting: weight\n    steps:\n      - setWeight: 101\n",
            ),
            "strategy.canary.steps[0].setWeight",
        ),
        (
            "both-zero.yaml",
            GOOD.replace("maxSurge: 1", "maxSurge: 0"),
            "strategy.rollingUpdate.maxSurge",
        ),
        (
            "no-command.yaml",
            GOOD.replace("  command: [\"zdd\", \"serve\"]\n", ""),
            "app.command",
        ),
    ];
    for (file, spec, field) in cases {
        run.write(file, &spec);
        let output = run
            .command(&["rollout", "-f", file])
            .output()
            .expect("run zdd");
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{file}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "{file}: one message expected, got: {stderr}"
        );
        assert!(
            lines[0].starts_with(&format!("{file}:")) && lines[0].contains(&format!(": {field}: ")),
            "{file}: {stderr}"
        );
        assert!(
            !run.path().join("zdd-runs").exists(),
            "{file}: a run directory was created"
        );
    }
    run.assert_nothing_left();
}

/// A canary by weight with `steps` (YAML list items, six spaces in).
fn weight_steps(steps: &str) -> String {
    with_strategy(&format!(
        "  canary:\n    trafficRouting: weight\n    steps:\n{steps}"
    ))
}

#[test]
fn header_and_mirror_routes_parse_with_argo_semantics() {
    use zdd::model::{RequestMatch, ValueMatch};
    use zdd::spec::MirrorSpec;
    let text = weight_steps(concat!(
        "      - setHeaderRoute: { name: testers, match: [ { header: X-Canary, exact: always }, { cookie: flavour, regex: \"b.*\" } ] }\n",
        "      - setMirrorRoute: { name: shadow, percentage: 50 }\n",
        "      - setMirrorRoute: { name: shadow }\n",
        "      - setMirrorRoute: { name: shadow, match: [ { header: X-Copy, exact: \"yes\" } ] }\n",
        "      - setHeaderRoute: { name: testers }\n",
    ));
    let spec = Spec::parse(&text, "x.yaml").expect("valid");
    let Strategy::CanaryWeight { steps } = spec.strategy else {
        panic!("{:?}", spec.strategy)
    };
    assert_eq!(
        steps,
        vec![
            CanaryStep::SetHeaderRoute {
                name: "testers".into(),
                matches: Some(vec![
                    RequestMatch::Header {
                        name: "X-Canary".into(),
                        value: ValueMatch::Exact("always".into()),
                    },
                    RequestMatch::Cookie {
                        name: "flavour".into(),
                        value: ValueMatch::Regex("b.*".into()),
                    },
                ]),
            },
            CanaryStep::SetMirrorRoute {
                name: "shadow".into(),
                mirror: Some(MirrorSpec {
                    percent: 50,
                    matches: vec![],
                }),
            },
            CanaryStep::SetMirrorRoute {
                name: "shadow".into(),
                mirror: None,
            },
            // A match alone copies all of what it matches.
            CanaryStep::SetMirrorRoute {
                name: "shadow".into(),
                mirror: Some(MirrorSpec {
                    percent: 100,
                    matches: vec![RequestMatch::Header {
                        name: "X-Copy".into(),
                        value: ValueMatch::Exact("yes".into()),
                    }],
                }),
            },
            CanaryStep::SetHeaderRoute {
                name: "testers".into(),
                matches: None,
            },
        ]
    );
    assert_eq!(
        steps[0].to_string(),
        "setHeaderRoute testers X-Canary=always and cookie flavour~b.*"
    );
    assert_eq!(steps[2].to_string(), "setMirrorRoute shadow removed");
}

#[test]
fn bad_header_and_mirror_routes_are_refused_at_their_position_in_users_words() {
    let header = "      - setHeaderRoute: { name: testers, match: [ { header: X-Canary, exact: always } ] }\n";
    let mirror = "      - setMirrorRoute: { name: shadow, percentage: 50 }\n";
    // Line 16 holds the first step (15 without trafficRouting).
    let cases: Vec<(String, &str, &str)> = vec![
        (
            with_strategy(&format!("  canary:\n    steps:\n{header}")),
            "x.yaml:15:25: strategy.canary.steps[0].setHeaderRoute: ",
            "needs trafficRouting: weight",
        ),
        (
            with_strategy(&format!(
                "  canary:\n    trafficRouting: replicas\n    steps:\n{mirror}"
            )),
            "x.yaml:16:25: strategy.canary.steps[0].setMirrorRoute: ",
            "needs trafficRouting: weight",
        ),
        (
            weight_steps("      - setMirrorRoute: { name: shadow, percentage: 150 }\n"),
            "x.yaml:16:53: strategy.canary.steps[0].setMirrorRoute.percentage: ",
            "150 is outside 0..=100",
        ),
        (
            weight_steps("      - setMirrorRoute: { name: shadow, percentage: -1 }\n"),
            "x.yaml:16:53: strategy.canary.steps[0].setMirrorRoute.percentage: ",
            "-1 is outside 0..=100",
        ),
        (
            weight_steps(
                "      - setHeaderRoute: { name: testers, match: [ { header: X-Canary, regex: \"a(b\" } ] }\n",
            ),
            "x.yaml:16:78: strategy.canary.steps[0].setHeaderRoute.match[0].regex: ",
            "`a(b` is not a valid regex",
        ),
        (
            weight_steps(
                "      - setHeaderRoute: { name: testers, match: [ { exact: always } ] }\n",
            ),
            "x.yaml:16:51: strategy.canary.steps[0].setHeaderRoute.match[0]: ",
            "header: NAME or cookie: NAME",
        ),
        (
            weight_steps(
                "      - setHeaderRoute: { name: testers, match: [ { header: A, cookie: b, exact: c } ] }\n",
            ),
            "x.yaml:16:51: strategy.canary.steps[0].setHeaderRoute.match[0]: ",
            "(one of the two)",
        ),
        (
            weight_steps("      - setHeaderRoute: { name: testers, match: [ { header: A } ] }\n"),
            "x.yaml:16:51: strategy.canary.steps[0].setHeaderRoute.match[0]: ",
            "exact: or regex:",
        ),
        (
            weight_steps("      - setHeaderRoute: { name: testers, match: [] }\n"),
            "x.yaml:16:49: strategy.canary.steps[0].setHeaderRoute.match: ",
            "at least one match",
        ),
        (
            weight_steps(&format!(
                "{header}      - setMirrorRoute: {{ name: testers, percentage: 10 }}\n"
            )),
            "x.yaml:17:33: strategy.canary.steps[1].setMirrorRoute.name: ",
            "`testers` already names a header route",
        ),
        (
            weight_steps(&format!(
                "{mirror}      - setMirrorRoute: {{ name: other, percentage: 10 }}\n"
            )),
            "x.yaml:17:33: strategy.canary.steps[1].setMirrorRoute.name: ",
            "one mirror at a time",
        ),
        (
            weight_steps(&format!(
                "{header}      - setHeaderRoute: {{ name: tester }}\n"
            )),
            "x.yaml:17:33: strategy.canary.steps[1].setHeaderRoute.name: ",
            "no header route `tester` is set by an earlier step, so there is nothing to remove; header routes set: testers",
        ),
        (
            weight_steps(
                "      - setHeaderRoute: { name: Testers, match: [ { header: A, exact: b } ] }\n",
            ),
            "x.yaml:16:33: strategy.canary.steps[0].setHeaderRoute.name: ",
            "lowercase",
        ),
        (
            weight_steps(
                "      - setHeaderRoute: { name: t, match: [ { header: A, exakt: b } ] }\n",
            ),
            "x.yaml:16:58: strategy.canary.steps[0].setHeaderRoute.match[0].exakt: ",
            "did you mean `exact`?",
        ),
    ];
    let mut wrong = Vec::new();
    for (text, position, message) in cases {
        let err = error_of(&text);
        if !err.starts_with(position)
            || !err.contains(message)
            || err.contains(" at line ")
            || err.lines().count() != 1
        {
            wrong.push(format!("want {position}…{message}…\n got {err}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn traffic_segments_parse_and_bad_ones_are_refused() {
    let with_segments = |segments: &str| {
        GOOD.replace(
            "traffic: { rate: 200, path: / }",
            &format!("traffic:\n  rate: 200\n  segments:\n{segments}"),
        )
    };
    let spec = Spec::parse(
        &with_segments(concat!(
            "    - { name: testers, share: 20%, headers: { X-Canary: always } }\n",
            "    - { name: beta, share: 5, cookie: flavour=b }\n",
        )),
        "x.yaml",
    )
    .expect("valid");
    let segments = &spec.traffic.segments;
    assert_eq!(segments.len(), 2);
    assert_eq!(segments[0].name, "testers");
    assert_eq!(segments[0].share_pct, 20.0);
    assert_eq!(
        segments[0].headers,
        [("X-Canary".to_string(), "always".to_string())]
    );
    assert_eq!(segments[1].share_pct, 5.0);
    assert_eq!(
        segments[1].headers,
        [("Cookie".to_string(), "flavour=b".to_string())]
    );
    let cases = [
        (
            "    - { name: a, share: 60%, headers: { X: y } }\n    - { name: b, share: 50%, headers: { X: y } }\n",
            "x.yaml:18:25: traffic.segments[1].share: the segments' shares add up to 110%",
        ),
        (
            "    - { name: a, share: 10% }\n",
            "x.yaml:17:7: traffic.segments[0]: give the segment's headers",
        ),
        (
            "    - { name: a, share: 10%, cookie: novalue }\n",
            "x.yaml:17:38: traffic.segments[0].cookie: `novalue` is not name=value",
        ),
        (
            "    - { name: a, share: 10%, headers: { X: y } }\n    - { name: a, share: 10%, headers: { X: y } }\n",
            "x.yaml:18:15: traffic.segments[1].name: `a` names another segment already",
        ),
        (
            "    - { name: a, share: 120%, headers: { X: y } }\n",
            "x.yaml:17:25: traffic.segments[0].share: ",
        ),
    ];
    let mut wrong = Vec::new();
    for (segments, want) in cases {
        let err = error_of(&with_segments(segments));
        if !err.starts_with(want) {
            wrong.push(format!("want {want}…\n got {err}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

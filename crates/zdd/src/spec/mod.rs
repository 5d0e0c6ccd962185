//! The rollout spec: one YAML file per rollout (docs/spec.md).

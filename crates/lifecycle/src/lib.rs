//! zdd-lifecycle: makes an axum/tower service zero-downtime-ready on Kubernetes.

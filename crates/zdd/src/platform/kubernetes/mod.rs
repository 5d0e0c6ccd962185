//! The Kubernetes platform, through kube-rs.

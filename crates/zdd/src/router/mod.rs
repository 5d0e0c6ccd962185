//! Routers: the local platform's data plane (kube-proxy's and the ingress's part). One module per router.

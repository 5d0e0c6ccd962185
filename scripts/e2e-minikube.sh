#!/usr/bin/env bash
# Every strategy of examples/ through `zdd rollout --platform kubernetes` on a real minikube, with
# the probe's traffic going through the cluster's own data plane (NodePort Service, Traefik,
# Gateway API). Fails when a rollout fails, or when a zero-downtime strategy drops a request.
# On a multi-node minikube (`minikube start --nodes 3`) one more case, node-drain, drains a node
# that runs a replica of the hardened manifests (PDB, anti-affinity, preStop) while `zdd probe`
# measures, and fails on a dropped request; with fewer nodes it is reported as skipped. (zdd does
# not drain a cluster's nodes itself: `kubectl drain` does, as a cluster upgrade would.)
#
# zdd runs as the ServiceAccount of deploy/kubernetes/rbac (a token, not your admin context), so
# the run also proves that the least-privilege Role is enough. The probe goes through --verify-url
# (the NodePort or Traefik); the preview checks (blue-green, the weighted canary's first step) go
# through --preview-url, the API server's Service proxy reached by `kubectl proxy` (admin context):
# it finds the preview Service that zdd creates mid-run, which a port-forward or
# `minikube service --url` started beforehand could not.
#
# CI does NOT run this script: no Kubernetes API server can run on the CI machines. CI tests the
# same code against crates/fake-apiserver (crates/zdd/tests/it/kubernetes_*.rs). See
# docs/kubernetes.md.
#
# Needs: minikube (running, Linux: the node IP must be reachable), kubectl, cargo, python3, and
# Traefik v3 + the Gateway API CRDs installed as in deploy/kubernetes/minikube.md (section 3).
#
# Environment:
#   ZDD_E2E_CONTEXT     admin kubeconfig context (default: minikube)
#   ZDD_E2E_PROFILE     the minikube profile behind it (default: the context's name, as minikube
#                       names a profile's context)
#   ZDD_E2E_NAMESPACE   namespace to run in, created if missing (default: zdd-e2e)
#   ZDD_E2E_RATE        probe rate in requests/s (default: 100)
#   ZDD_E2E_ONLY        run only the cases whose name contains this (e.g. canary-weight, node-drain)
#   ZDD_E2E_SKIP_IMAGE  1: do not rebuild the zdd-demo:dev image inside minikube
set -euo pipefail
cd "$(dirname "$0")/.."

CONTEXT=${ZDD_E2E_CONTEXT:-minikube}
PROFILE=${ZDD_E2E_PROFILE:-$CONTEXT}
NS=${ZDD_E2E_NAMESPACE:-zdd-e2e}
RATE=${ZDD_E2E_RATE:-100}
ONLY=${ZDD_E2E_ONLY:-}

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'e2e-minikube: %s\n' "$*" >&2; exit 2; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found (see deploy/kubernetes/minikube.md)"; }
admin() { kubectl --context "$CONTEXT" "$@"; }
mk() { minikube --profile "$PROFILE" "$@"; }

for tool in minikube kubectl cargo python3; do need "$tool"; done
mk status >/dev/null 2>&1 || die "minikube profile $PROFILE is not running: minikube start --profile $PROFILE --kubernetes-version=stable"
admin get crd traefikservices.traefik.io ingressroutes.traefik.io httproutes.gateway.networking.k8s.io >/dev/null \
  || die "Traefik v3 and the Gateway API CRDs are needed: deploy/kubernetes/minikube.md, section 3"
admin -n traefik get service traefik >/dev/null || die "no Service traefik in namespace traefik (Helm chart)"

say "building zdd (release)"
cargo build --release -p zdd
ZDD=$PWD/target/release/zdd

if [ "${ZDD_E2E_SKIP_IMAGE:-0}" != 1 ]; then
  say "building the image zdd-demo:dev inside minikube"
  mk image build --all -t zdd-demo:dev .
fi

WORK=$(mktemp -d)
PROXY_PID=
trap '[ -z "$PROXY_PID" ] || kill "$PROXY_PID" 2>/dev/null; rm -rf "$WORK"' EXIT

say "namespace $NS, RBAC and the Gateway"
admin create namespace "$NS" --dry-run=client -o yaml | admin apply -f -
admin -n "$NS" apply -k deploy/kubernetes/rbac
admin -n "$NS" apply -f deploy/kubernetes/components/gateway/gateway.yaml

# A kubeconfig that authenticates as the ServiceAccount `zdd`, with the cluster's CA.
say "kubeconfig for the ServiceAccount zdd"
server=$(admin config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca_file=$(admin config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')
if [ -z "$ca_file" ]; then
  ca_file=$WORK/ca.crt
  admin config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$ca_file"
fi
token=$(admin -n "$NS" create token zdd --duration=2h)
# Only zdd uses it (KUBECONFIG on its command line): `admin` keeps the caller's kubeconfig.
ZDD_KUBECONFIG=$WORK/kubeconfig
zdd_config() { kubectl --kubeconfig "$ZDD_KUBECONFIG" config "$@" >/dev/null; }
zdd_config set-cluster e2e --server="$server" --certificate-authority="$ca_file" --embed-certs=true
zdd_config set-credentials zdd --token="$token"
zdd_config set-context zdd-e2e --cluster=e2e --user=zdd --namespace="$NS"
zdd_config use-context zdd-e2e

node_ip=$(mk ip)
traefik_port=$(admin -n traefik get service traefik -o jsonpath='{.spec.ports[?(@.name=="web")].nodePort}')
[ -n "$traefik_port" ] || die "Traefik's Service has no nodePort for its web port"
TRAEFIK_URL=http://$node_ip:$traefik_port

say "kubectl proxy for the preview Services"
kubectl --context "$CONTEXT" proxy --port=0 >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
proxy_port=
for _ in $(seq 1 50); do
  proxy_port=$(sed -n 's/^Starting to serve on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/proxy.log")
  [ -n "$proxy_port" ] && break
  sleep 0.2
done
[ -n "$proxy_port" ] || die "kubectl proxy did not start: $(cat "$WORK/proxy.log")"

cleanup_app() {
  admin -n "$NS" delete deployment,service,traefikservice,ingressroute,httproute -l "app=$1" \
    --ignore-not-found --wait=true >/dev/null
}

# name | example | router | zero-downtime (a dropped request fails the case; "unmeasured": run
# without --verify-url/--preview-url, as from a laptop that cannot reach the cluster's routes: no
# traffic, a fixed --settle-delay before each scale-to-zero). ab-header and shadow also check what
# the probe saw while their route was set (the summary's route_windows): the testers segment
# answered by v2, the clients by v1 (at least 90%: on a cluster a route object reaches the router
# a moment after zdd applied it, and zdd does not wait for that).
CASES="
recreate|recreate|service|no
rolling-update|rolling-update|service|yes
blue-green|blue-green|service|yes
canary-replicas|canary-replicas|service|yes
canary-weight-traefik|canary-weight|traefik|yes
canary-weight-gateway-api|canary-weight|gateway-api|yes
ab-header-traefik|ab-header|traefik|yes
ab-header-gateway-api|ab-header|gateway-api|yes
shadow-traefik|shadow|traefik|yes
shadow-gateway-api|shadow|gateway-api|yes
blue-green-unmeasured|blue-green|service|unmeasured
"

results=$WORK/results.md
printf '| case | router | exit | requests | failed | longest outage | result |\n|---|---|---:|---:|---:|---:|---|\n' >"$results"
status=0
while IFS='|' read -r name example router zero_downtime; do
  [ -n "$name" ] || continue
  case "$name" in *"$ONLY"*) ;; *) continue ;; esac
  app=$(sed -n 's/^name: *//p' "examples/$example.yaml" | head -n1)
  say "$name: examples/$example.yaml (app $app) with --router $router"
  cleanup_app "$app"
  spec=$WORK/$name.yaml
  sed "s/rate: [0-9]*/rate: $RATE/" "examples/$example.yaml" >"$spec"

  if [ "$router" = service ]; then
    # The main Service as a NodePort, so the probe reaches it from here through kube-proxy. zdd
    # applies its selector and ports over it (server-side apply); the type stays.
    admin -n "$NS" create service nodeport "$app" --tcp=80:8080 --dry-run=client -o yaml | admin apply -f - >/dev/null
    port=$(admin -n "$NS" get service "$app" -o jsonpath='{.spec.ports[0].nodePort}')
    url=http://$node_ip:$port
  else
    url=$TRAEFIK_URL
  fi

  preview_url=http://127.0.0.1:$proxy_port/api/v1/namespaces/$NS/services/$app-preview:80/proxy

  if [ "$zero_downtime" = unmeasured ]; then
    access=(--settle-delay 5s)
  else
    access=(--verify-url "$url" --preview-url "$preview_url")
  fi

  set +e
  KUBECONFIG=$ZDD_KUBECONFIG "$ZDD" rollout -f "$spec" --platform kubernetes --context zdd-e2e --namespace "$NS" \
    --router "$router" "${access[@]}" --run-dir "$WORK/run-$name" --json "$WORK/$name.json"
  code=$?
  set -e
  row=$(python3 - "$WORK/$name.json" "$name" "$router" "$code" "$zero_downtime" <<'EOF'
import json, sys
path, name, router, code, zero_downtime = sys.argv[1:]
try:
    summary = json.load(open(path))
    if isinstance(summary, list):
        summary = summary[0]
except (OSError, ValueError):
    summary = {}
failed = summary.get("failed", "?")
if zero_downtime == "unmeasured":
    ok = code == "0" and summary.get("traffic_measured") is False
    print(f"| {name} | {router} | {code} | not measured | not measured | not measured | "
          f"{'ok' if ok else 'FAILED'} |")
else:
    ok = code == "0" and (zero_downtime == "no" or failed == 0)
    # A/B and shadow: who answered while the managed route was set.
    want = {"segment testers": "v2", "clients": "v1"}
    for window in summary.get("route_windows", []):
        version = want.get(window.get("requests_of"))
        answered = sum(window.get("by_version", {}).values())
        if version and (answered == 0 or window["by_version"].get(version, 0) < 0.9 * answered):
            print(f"{name}: {window['requests_of']} while {window['route']} was set: "
                  f"{window['by_version']}", file=sys.stderr)
            ok = False
    print(f"| {name} | {router} | {code} | {summary.get('total', '?')} | {failed} | "
          f"{summary.get('longest_outage_s', '?')} s | {'ok' if ok else 'FAILED'} |")
EOF
)
  printf '%s\n' "$row" >>"$results"
  case "$row" in *FAILED*) status=1 ;; esac
  cleanup_app "$app"
done <<<"$CASES"

# A node drain under the hardened manifests, measured from outside: `zdd probe` on the NodePort
# while `kubectl drain` evicts a replica's node (through the PDB, each pod with its preStop) and
# the Deployment recreates it elsewhere. The control plane's IP carries the traffic meanwhile.
drain_case() {
  local name=node-drain app=zdd-demo
  case "$name" in *"$ONLY"*) ;; *) return 0 ;; esac
  local nodes
  nodes=$(admin get nodes --no-headers | wc -l)
  if [ "$nodes" -lt 3 ]; then
    say "$name: skipped: $nodes node(s); it needs minikube start --nodes 3 (deploy/kubernetes/minikube.md)"
    printf '| %s | service | - | - | - | - | skipped (%s node(s), needs 3) |\n' "$name" "$nodes" >>"$results"
    return 0
  fi
  say "$name: deploy/kubernetes/rolling-update/v1 on $nodes nodes, then kubectl drain under zdd probe"
  cleanup_app "$app"
  admin -n "$NS" apply -k deploy/kubernetes/rolling-update/v1 >/dev/null
  admin -n "$NS" rollout status "deployment/$app" --timeout=300s
  admin -n "$NS" get pods -l "app=$app" -o wide
  # A worker that runs a replica (the control plane carries the NodePort traffic from here).
  local control_plane victim port
  control_plane=$(admin get nodes -l node-role.kubernetes.io/control-plane -o jsonpath='{.items[*].metadata.name}')
  victim=$(admin -n "$NS" get pods -l "app=$app" -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' \
    | grep -v -x -F -e "${control_plane:-none}" | head -n1 || true)
  [ -n "$victim" ] || die "$name: no worker node runs a replica of $app"
  port=$(admin -n "$NS" get service "$app" -o jsonpath='{.spec.ports[0].nodePort}')
  "$ZDD" probe "http://$node_ip:$port/" --rate "$RATE" --duration 90s --max-failed 0 \
    --json "$WORK/$name.json" &
  local probe_pid=$! drain_code probe_code
  sleep 5
  set +e
  admin drain "$victim" --ignore-daemonsets --delete-emptydir-data --timeout=120s
  drain_code=$?
  admin -n "$NS" rollout status "deployment/$app" --timeout=120s
  admin uncordon "$victim"
  wait "$probe_pid"
  probe_code=$?
  set -e
  admin -n "$NS" get pods -l "app=$app" -o wide
  python3 - "$WORK/$name.json" "$name" "$drain_code" "$probe_code" >>"$results" <<'EOF'
import json, sys
path, name, drain_code, probe_code = sys.argv[1:]
try:
    report = json.load(open(path))
except (OSError, ValueError):
    report = {}
failed = report.get("failed", "?")
ok = drain_code == "0" and probe_code == "0" and failed == 0
print(f"| {name} | service | {drain_code} | {report.get('total', '?')} | {failed} | "
      f"{report.get('longest_outage_s', '?')} s | {'ok' if ok else 'FAILED'} |")
EOF
  admin -n "$NS" delete -k deploy/kubernetes/rolling-update/v1 --ignore-not-found --wait=true >/dev/null
}
drain_case
case "$(tail -n1 "$results")" in *FAILED*) status=1 ;; esac

echo
echo "## zdd on minikube ($(date -u +%Y-%m-%dT%H:%MZ), rate $RATE rps)"
echo
cat "$results"
exit "$status"

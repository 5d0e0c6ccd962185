#!/usr/bin/env python3
"""Checks what makes built manifests zero-downtime, beyond what a schema can say.

Usage: zdd_manifest_check.py [--allow-recreate] FILE.yaml...   (exit 0 ok, 1 problems, 2 bad input)

Each file is one rollout state (e.g. `kubectl kustomize <overlay>` output). The checks:
- API versions: only current ones (no `extensions/v1beta1`, `apps/v1beta1`, `traefik.containo.us`...).
- Deployments: readiness, liveness and startup probes on declared ports; a preStop `sleep` whose
  seconds plus the app's DRAIN_DELAY and SHUTDOWN_TIMEOUT fit in terminationGracePeriodSeconds;
  RollingUpdate with `maxUnavailable: 0` (Recreate only where downtime is the point); spread or
  anti-affinity; requests and limits; a locked-down securityContext; the recommended labels.
- One PodDisruptionBudget per app that covers its pods and still lets a drain evict one.
- Services, TraefikServices, IngressRoutes and HTTPRoutes point at things that exist, on ports
  that exist, with weights that route somewhere, to versions that have pods (a `*-preview`
  Service may wait for its version to be scaled up).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# The API versions current clusters and routers serve; anything else is deprecated or removed.
CURRENT_API_VERSIONS = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "PodDisruptionBudget": "policy/v1",
    "TraefikService": "traefik.io/v1alpha1",
    "IngressRoute": "traefik.io/v1alpha1",
    "HTTPRoute": "gateway.networking.k8s.io/v1",
    "Gateway": "gateway.networking.k8s.io/v1",
}

RECOMMENDED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version")
DEFAULT_GRACE_SECONDS = 30
MAX_GATEWAY_WEIGHT = 1_000_000

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a humantime string such as `250ms`, `5s` or `1m30s`."""
    text = text.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def load_objects(paths: list[Path]) -> list[dict]:
    objects = []
    for path in paths:
        with path.open() as f:
            objects.extend(doc for doc in yaml.safe_load_all(f) if doc)
    return objects


def name_of(obj: dict) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def selector_matches(selector: dict | None, labels: dict | None) -> bool:
    """Equality-based selector semantics (what Services, PDBs and Deployments here use)."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


@dataclass
class Cluster:
    """The objects of one rollout state, indexed for cross-references."""

    objects: list[dict]
    problems: list[str] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o.get("kind") == kind]

    def get(self, kind: str, name: str) -> dict | None:
        for o in self.of_kind(kind):
            if o.get("metadata", {}).get("name") == name:
                return o
        return None

    def fail(self, obj: dict | None, message: str) -> None:
        self.problems.append(f"{name_of(obj)}: {message}" if obj else message)

    def deployments_selected_by(self, selector: dict | None) -> list[dict]:
        return [
            d
            for d in self.of_kind("Deployment")
            if selector_matches(selector, d["spec"]["template"].get("metadata", {}).get("labels"))
        ]

    def running_replicas(self, selector: dict | None) -> int:
        return sum(int(d["spec"].get("replicas", 1)) for d in self.deployments_selected_by(selector))


def check_api_versions(cluster: Cluster) -> None:
    for obj in cluster.objects:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        wanted = CURRENT_API_VERSIONS.get(kind)
        if wanted is None:
            cluster.fail(obj, f"kind {kind} ({api_version}) is not one this checker knows")
        elif api_version != wanted:
            cluster.fail(obj, f"apiVersion {api_version} is deprecated or removed; use {wanted}")


def _env_seconds(container: dict, name: str) -> float:
    for env in container.get("env") or []:
        if env.get("name") == name and "value" in env:
            return parse_duration(str(env["value"]))
    return 0.0


def _port_exists(container: dict, port: int | str) -> bool:
    for declared in container.get("ports") or []:
        if port in (declared.get("name"), declared.get("containerPort")):
            return True
    return False


def _is_zero(value: int | str | None) -> bool:
    return value is not None and str(value).strip() in ("0", "0%")


def check_deployment(cluster: Cluster, deploy: dict, allow_recreate: bool) -> None:
    spec = deploy.get("spec", {})
    template = spec.get("template", {})
    pod = template.get("spec", {})
    pod_labels = template.get("metadata", {}).get("labels") or {}

    if not selector_matches(spec.get("selector", {}).get("matchLabels"), pod_labels):
        cluster.fail(deploy, "spec.selector does not match the pod template's labels")
    if "app" not in pod_labels:
        cluster.fail(deploy, "pod template has no `app` label (Services and the PDB select on it)")
    for label in RECOMMENDED_LABELS:
        if label not in (deploy.get("metadata", {}).get("labels") or {}) or label not in pod_labels:
            cluster.fail(deploy, f"missing recommended label {label} (on the Deployment and its pods)")

    strategy = spec.get("strategy") or {}
    strategy_type = strategy.get("type", "RollingUpdate")
    if strategy_type == "Recreate":
        if not allow_recreate:
            cluster.fail(deploy, "strategy Recreate stops every pod before starting new ones (downtime)")
    else:
        rolling = strategy.get("rollingUpdate") or {}
        if not _is_zero(rolling.get("maxUnavailable")):
            cluster.fail(
                deploy,
                "rolling update needs maxUnavailable: 0 (the default 25% removes ready pods first)",
            )
        if _is_zero(rolling.get("maxSurge")):
            cluster.fail(deploy, "maxSurge: 0 with maxUnavailable: 0 cannot roll")

    if not (pod.get("topologySpreadConstraints") or (pod.get("affinity") or {}).get("podAntiAffinity")):
        cluster.fail(deploy, "no topologySpreadConstraints or podAntiAffinity: one node drain can take every pod")

    pod_security = pod.get("securityContext") or {}
    grace = pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    for container in pod.get("containers") or []:
        where = f"container {container.get('name')}"
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            spec_probe = container.get(probe)
            if not spec_probe:
                cluster.fail(deploy, f"{where} has no {probe}")
                continue
            port = (spec_probe.get("httpGet") or spec_probe.get("tcpSocket") or {}).get("port")
            if port is not None and not _port_exists(container, port):
                cluster.fail(deploy, f"{where} {probe} uses port {port!r}, which the container does not declare")

        sleep = (((container.get("lifecycle") or {}).get("preStop")) or {}).get("sleep")
        if not sleep:
            cluster.fail(deploy, f"{where} has no preStop sleep: it would get SIGTERM while still routed to")
        else:
            try:
                drain = _env_seconds(container, "DRAIN_DELAY") + _env_seconds(container, "SHUTDOWN_TIMEOUT")
            except ValueError as err:
                cluster.fail(deploy, f"{where}: {err}")
                drain = 0.0
            needed = float(sleep.get("seconds", 0)) + drain
            if sleep.get("seconds", 0) <= 0:
                cluster.fail(deploy, f"{where} preStop sleep must be longer than 0s")
            if needed >= grace:
                cluster.fail(
                    deploy,
                    f"{where}: preStop sleep + DRAIN_DELAY + SHUTDOWN_TIMEOUT = {needed:g}s is not shorter "
                    f"than terminationGracePeriodSeconds {grace}: the pod is killed mid-drain",
                )

        resources = container.get("resources") or {}
        for need in ("cpu", "memory"):
            if need not in (resources.get("requests") or {}):
                cluster.fail(deploy, f"{where} has no {need} request")
        if "memory" not in (resources.get("limits") or {}):
            cluster.fail(deploy, f"{where} has no memory limit")

        security = container.get("securityContext") or {}
        # Container settings override the pod's.
        effective = {**pod_security, **security}
        if effective.get("runAsNonRoot") is not True:
            cluster.fail(deploy, f"{where} may run as root (runAsNonRoot is not true)")
        if security.get("readOnlyRootFilesystem") is not True:
            cluster.fail(deploy, f"{where} has a writable root filesystem")
        if security.get("allowPrivilegeEscalation") is not False:
            cluster.fail(deploy, f"{where} allows privilege escalation")
        if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
            cluster.fail(deploy, f"{where} does not drop all capabilities")
        if (effective.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            cluster.fail(deploy, f"{where} has no RuntimeDefault seccomp profile")


def check_disruption_budgets(cluster: Cluster) -> None:
    apps: dict[str, list[dict]] = {}
    for deploy in cluster.of_kind("Deployment"):
        app = (deploy["spec"]["template"].get("metadata", {}).get("labels") or {}).get("app")
        if app:
            apps.setdefault(app, []).append(deploy)
    budgets = cluster.of_kind("PodDisruptionBudget")
    for app, deploys in sorted(apps.items()):
        covering = []
        for pdb in budgets:
            selector = (pdb.get("spec", {}).get("selector") or {}).get("matchLabels")
            if all(selector_matches(selector, d["spec"]["template"]["metadata"]["labels"]) for d in deploys):
                covering.append(pdb)
        if len(covering) != 1:
            cluster.fail(
                None, f"app {app}: needs exactly one PodDisruptionBudget over all its pods, found {len(covering)}"
            )
            continue
        pdb_spec = covering[0]["spec"]
        total = sum(int(d["spec"].get("replicas", 1)) for d in deploys)
        if "maxUnavailable" in pdb_spec:
            if _is_zero(pdb_spec["maxUnavailable"]):
                cluster.fail(covering[0], "maxUnavailable 0 blocks every node drain")
        elif "minAvailable" in pdb_spec:
            min_available = pdb_spec["minAvailable"]
            if str(min_available).endswith("%"):
                blocks = str(min_available) == "100%"
            else:
                blocks = int(min_available) >= total
            if blocks:
                cluster.fail(covering[0], f"minAvailable {min_available} of {total} pods blocks every node drain")
        else:
            cluster.fail(covering[0], "sets neither maxUnavailable nor minAvailable")


def check_services(cluster: Cluster) -> None:
    for svc in cluster.of_kind("Service"):
        selector = svc.get("spec", {}).get("selector")
        deploys = cluster.deployments_selected_by(selector)
        if not deploys:
            cluster.fail(svc, f"selector {selector} matches no Deployment's pods")
            continue
        # A Service clients use must have pods. A preview Service (blue-green) may wait for its
        # version to be scaled up, and a per-version Service (`<app>-<version>`) only gets what
        # routers send it, which the router checks cover.
        name = svc.get("metadata", {}).get("name", "")
        per_version = name.endswith(f"-{selector.get('version')}") if selector else False
        if not (name.endswith("-preview") or per_version) and cluster.running_replicas(selector) == 0:
            cluster.fail(svc, f"selector {selector} selects only Deployments scaled to 0: no endpoints")
        for port in svc["spec"].get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            for deploy in deploys:
                containers = deploy["spec"]["template"]["spec"]["containers"]
                if not any(_port_exists(c, target) for c in containers):
                    cluster.fail(svc, f"targetPort {target!r} is not a port of {name_of(deploy)}")


def _service_port_exists(svc: dict, port: int | str | None) -> bool:
    return any(port in (p.get("port"), p.get("name")) for p in svc["spec"].get("ports") or [])


def _check_backend(cluster: Cluster, owner: dict, ref: dict, why: str) -> None:
    """A Kubernetes Service a router sends to: it must exist, have the port and have pods."""
    name = ref.get("name")
    svc = cluster.get("Service", name)
    if svc is None:
        cluster.fail(owner, f"{why}: Service {name} does not exist")
        return
    if not _service_port_exists(svc, ref.get("port")):
        cluster.fail(owner, f"{why}: Service {name} has no port {ref.get('port')!r}")
    if cluster.running_replicas(svc["spec"].get("selector")) == 0:
        cluster.fail(
            owner,
            f"{why}: Service {name} has no running pods; Traefik drops the whole route when a "
            "referenced Service has no endpoints",
        )


def _check_traefik_ref(cluster: Cluster, owner: dict, ref: dict, why: str) -> None:
    if ref.get("kind", "Service") == "TraefikService":
        if cluster.get("TraefikService", ref.get("name")) is None:
            cluster.fail(owner, f"{why}: TraefikService {ref.get('name')} does not exist")
    else:
        _check_backend(cluster, owner, ref, why)


def check_traefik(cluster: Cluster) -> None:
    for ts in cluster.of_kind("TraefikService"):
        spec = ts.get("spec") or {}
        if "weighted" in spec:
            services = spec["weighted"].get("services") or []
            weights = [s.get("weight", 1) for s in services]
            if not services:
                cluster.fail(ts, "weighted has no services")
            if any(not isinstance(w, int) or w < 0 for w in weights):
                cluster.fail(ts, f"weights must be integers >= 0, got {weights}")
            elif services and sum(weights) == 0:
                cluster.fail(ts, "every weight is 0: Traefik answers 503 to everything")
            for ref in services:
                _check_traefik_ref(cluster, ts, ref, "weighted")
        elif "mirroring" in spec:
            mirroring = spec["mirroring"]
            _check_traefik_ref(cluster, ts, mirroring, "mirroring main service")
            for mirror in mirroring.get("mirrors") or []:
                percent = mirror.get("percent", 0)
                if not isinstance(percent, int) or not 0 < percent <= 100:
                    cluster.fail(ts, f"mirror {mirror.get('name')} percent must be 1..100, got {percent!r}")
                _check_traefik_ref(cluster, ts, mirror, "mirror")
        else:
            cluster.fail(ts, "neither weighted nor mirroring")

    for route in cluster.of_kind("IngressRoute"):
        routes = route.get("spec", {}).get("routes") or []
        for rule in routes:
            for ref in rule.get("services") or []:
                _check_traefik_ref(cluster, route, ref, f"route {rule.get('match')!r}")
        # A header rule must be tried before the catch-all it narrows, or it never matches.
        header_rules = [r for r in routes if "Header" in r.get("match", "")]
        plain_rules = [r for r in routes if "Header" not in r.get("match", "")]
        for header_rule in header_rules:
            for plain in plain_rules:
                hp, pp = header_rule.get("priority"), plain.get("priority")
                if hp is not None and pp is not None and hp <= pp:
                    cluster.fail(
                        route,
                        f"header route {header_rule['match']!r} has priority {hp}, not above {pp} of "
                        f"{plain['match']!r}: it never matches",
                    )


def check_gateway_api(cluster: Cluster) -> None:
    for route in cluster.of_kind("HTTPRoute"):
        spec = route.get("spec") or {}
        for parent in spec.get("parentRefs") or []:
            if parent.get("kind", "Gateway") == "Gateway" and cluster.get("Gateway", parent.get("name")) is None:
                cluster.fail(route, f"parent Gateway {parent.get('name')} is not part of these manifests")
        for index, rule in enumerate(spec.get("rules") or []):
            refs = rule.get("backendRefs") or []
            weights = [r.get("weight", 1) for r in refs]
            if any(not isinstance(w, int) or not 0 <= w <= MAX_GATEWAY_WEIGHT for w in weights):
                cluster.fail(route, f"rule {index}: weights must be integers 0..{MAX_GATEWAY_WEIGHT}, got {weights}")
            elif refs and sum(weights) == 0:
                cluster.fail(route, f"rule {index}: every weight is 0: requests get 500")
            if not refs:
                cluster.fail(route, f"rule {index} has no backendRefs")
            for ref in refs:
                if ref.get("kind", "Service") == "Service":
                    _check_backend(cluster, route, ref, f"rule {index}")


def check(objects: list[dict], allow_recreate: bool = False) -> list[str]:
    """Every problem found in one rollout state; empty means zero-downtime-ready."""
    cluster = Cluster(objects)
    check_api_versions(cluster)
    for deploy in cluster.of_kind("Deployment"):
        check_deployment(cluster, deploy, allow_recreate)
    check_disruption_budgets(cluster)
    check_services(cluster)
    check_traefik(cluster)
    check_gateway_api(cluster)
    if not cluster.of_kind("Deployment"):
        cluster.fail(None, "no Deployment at all")
    return cluster.problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--allow-recreate", action="store_true", help="the Recreate demo: downtime is expected")
    args = parser.parse_args(argv)
    try:
        objects = load_objects(args.files)
    except (OSError, yaml.YAMLError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    problems = check(objects, allow_recreate=args.allow_recreate)
    for problem in problems:
        print(f"FAIL {problem}")
    if not problems:
        print(f"ok: {len(objects)} objects in {', '.join(map(str, args.files))}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

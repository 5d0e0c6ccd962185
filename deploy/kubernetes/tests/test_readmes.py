"""The READMEs say what the manifests do: commands, names, labels, ports and links all match."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from manifests import KUBERNETES, REPO, discover_overlays, objects
from readme_replay import ReplayError, replay, shell_commands

# rbac/ belongs to the zdd tool's Kubernetes platform, not to these manifests.
PAGES = sorted(
    p for p in KUBERNETES.rglob("*.md") if not {"tests", "node_modules", "rbac"} & set(p.relative_to(KUBERNETES).parts)
) + [REPO / "docs" / "kubernetes-manifests.md"]
STRATEGY_READMES = sorted({KUBERNETES / overlay.split("/")[0] / "README.md" for overlay in discover_overlays()})
OVERLAYS = discover_overlays()


def page_id(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


def all_objects() -> list[dict]:
    return [obj for overlay in OVERLAYS for obj in objects(overlay)]


def strategy_objects(readme: Path) -> list[dict]:
    strategy = readme.parent.name
    return [obj for overlay in OVERLAYS if overlay.split("/")[0] == strategy for obj in objects(overlay)]


@pytest.mark.parametrize("page", [p for p in PAGES if shell_commands(p)], ids=page_id)
def test_commands_replay_against_the_manifests(page):
    session = replay(page, allow_recreate=page.parent.name == "recreate")
    assert session.state == {} or page not in STRATEGY_READMES, "the README does not clean up"


@pytest.mark.parametrize("readme", STRATEGY_READMES, ids=page_id)
def test_strategy_readme_applies_watches_changes_and_cleans_up(readme):
    texts = [command.text for command in shell_commands(readme)]
    assert any(t.startswith("kubectl apply -k deploy/kubernetes/") for t in texts)
    assert any(t.startswith("zdd probe ") for t in texts), "no `zdd probe` to watch the traffic"
    assert any(t.startswith(("kubectl patch", "kubectl scale", "kubectl apply -k")) for t in texts[1:])
    assert any(t.startswith("kubectl delete -k deploy/kubernetes/") for t in texts)
    assert "## What you should see" in readme.read_text()


def test_replay_catches_a_wrong_readme(tmp_path):
    """The replay itself can fail: scaling v1 away while the TraefikService still sends to it."""
    page = tmp_path / "README.md"
    page.write_text(
        "```sh\n"
        "kubectl apply -k deploy/kubernetes/canary-weight/traefik\n"
        "kubectl scale deployment zdd-demo-v1 --replicas=0\n"
        "```\n"
    )
    with pytest.raises(ReplayError, match="Service zdd-demo-v1 has no running pods"):
        replay(page)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("kubectl scale deployment zdd-demo-v3 --replicas=1", "Deployment zdd-demo-v3 does not exist"),
        ("kubectl get pods -l app=zdd-demo,version=v9", "label selector app=zdd-demo,version=v9 matches nothing"),
        ("kubectl port-forward svc/zdd-demo 8080:8080", "Service zdd-demo has no port 8080"),
        (
            "kubectl patch traefikservice zdd-demo --type=json"
            """ -p '[{"op":"replace","path":"/spec/weighted/services/2/weight","value":1}]'""",
            "index 2 is out of range",
        ),
        ("curl -si -H 'X-Group: b' \"$TRAEFIK/\"", "header X-Group is matched by no IngressRoute or HTTPRoute"),
        ('zdd probe "$NOWHERE/" --rate 50 --duration 1m', "$NOWHERE is used before it is set"),
    ],
)
def test_replay_rejects_names_that_do_not_exist(command, message, tmp_path):
    page = tmp_path / "README.md"
    page.write_text(
        "```sh\nkubectl apply -k deploy/kubernetes/canary-weight/traefik\n"
        "TRAEFIK=$(minikube service traefik -n traefik --url | head -n1)\n"
        f"{command}\n```\n"
    )
    with pytest.raises(ReplayError) as raised:
        replay(page)
    assert message in str(raised.value)


LINK = re.compile(r"\]\(([^)]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_resolve(page):
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "#")):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page_id(page)} links to {target}, which does not exist"


NAME_IN_CODE = re.compile(r"`(zdd-[a-z0-9-]+(?::[a-z0-9]+)?)`")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_object_names_in_text_exist(page):
    everything = all_objects()
    known = {obj["metadata"]["name"] for obj in everything} | {
        c["image"] for d in everything if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]
    }
    if page in STRATEGY_READMES:
        local = strategy_objects(page)
        known = {obj["metadata"]["name"] for obj in local} | {"zdd-demo:dev"}
    for name in NAME_IN_CODE.findall(page.read_text()):
        assert name in known, f"{page_id(page)} names `{name}`, which its manifests do not define"


LABEL_IN_CODE = re.compile(r"`(app|version): ([a-z0-9|-]+)`")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_labels_in_text_are_on_the_pods(page):
    pod_labels = [
        d["spec"]["template"]["metadata"]["labels"]
        for d in (strategy_objects(page) if page in STRATEGY_READMES else all_objects())
        if d["kind"] == "Deployment"
    ]
    for key, values in LABEL_IN_CODE.findall(page.read_text()):
        for value in values.split("|"):
            assert any(labels.get(key) == value for labels in pod_labels), (
                f"{page_id(page)} says pods carry `{key}: {value}`, none does"
            )


PORT_IN_TEXT = re.compile(r"\b(?:port|ports|listens on|`http`)\)? (\d{2,5})\b")


def test_ports_in_text_match_the_manifests():
    everything = all_objects()
    declared = set()
    for obj in everything:
        if obj["kind"] == "Service":
            declared |= {p["port"] for p in obj["spec"]["ports"]}
        elif obj["kind"] == "Deployment":
            declared |= {p["containerPort"] for c in obj["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        elif obj["kind"] == "Gateway":
            declared |= {listener["port"] for listener in obj["spec"]["listeners"]}
    mentioned = 0
    for page in PAGES:
        for port in PORT_IN_TEXT.findall(page.read_text()):
            mentioned += 1
            assert int(port) in declared, (
                f"{page_id(page)} mentions port {port}; the manifests declare {sorted(declared)}"
            )
    assert mentioned >= 10
    assert declared == {80, 8080, 8000}


def lifecycle_metric_names() -> set[str]:
    """The metric names the reference service exposes, read from the lifecycle crate."""
    names = set()
    for source in (REPO / "crates" / "lifecycle" / "src").glob("*.rs"):
        names |= set(re.findall(r'pub const [A-Z_]+: &str = "([a-z_]+)";', source.read_text()))
    return names


def test_dashboard_charts_request_rate_by_version():
    dashboard = json.loads((KUBERNETES / "monitoring" / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert any(re.search(r"sum by \(version\) \(rate\(http_requests_total\{[^}]*\}\[1m\]\)\)", e) for e in exprs)
    exposed = lifecycle_metric_names()
    assert "http_requests_total" in exposed
    for expr in exprs:
        for metric in re.findall(r"\b([a-z_]+)(?:_bucket)?\{", expr):
            base = metric.removesuffix("_bucket")
            assert base in exposed, f"dashboard queries {metric}, which the service does not expose"

"""The manifests build, pass the official schemas, and are zero-downtime; broken ones are caught."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes_validate.utils import latest_version

import zdd_manifest_check
from manifests import (
    EXPECTS_DOWNTIME,
    FIXTURES,
    KUBERNETES,
    build,
    discover_overlays,
    expectation,
    kubernetes_validate,
    objects,
    validate_crds,
)

OVERLAYS = discover_overlays()
OLDEST_VERSION = "1.30.0"  # the first release with the preStop `sleep` action (beta, on by default)
NEWEST_VERSION = latest_version()


@pytest.fixture(scope="module")
def built_files(tmp_path_factory) -> list[Path]:
    """Every overlay built once into its own file."""
    directory = tmp_path_factory.mktemp("built")
    files = []
    for overlay in OVERLAYS:
        path = directory / (overlay.replace("/", "__") + ".yaml")
        path.write_text(build(overlay))
        files.append(path)
    return files


def test_every_strategy_is_here():
    strategies = {overlay.split("/")[0] for overlay in OVERLAYS}
    assert strategies == {
        "recreate",
        "rolling-update",
        "blue-green",
        "canary-replicas",
        "canary-weight",
        "ab-header",
        "shadow",
    }
    for strategy in strategies:
        assert (KUBERNETES / strategy / "README.md").is_file(), f"{strategy} has no README.md"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_builds(overlay):
    kinds = {obj["kind"] for obj in objects(overlay)}
    assert {"Deployment", "Service", "PodDisruptionBudget"} <= kinds


@pytest.mark.parametrize("version", [OLDEST_VERSION, NEWEST_VERSION])
def test_core_objects_pass_kubernetes_validate_strict(built_files, version):
    problems, output = kubernetes_validate(built_files, version)
    assert problems == [], output
    # --quiet hides passes, so count what was validated from the built objects themselves.
    core = [
        o
        for f in built_files
        for o in yaml.safe_load_all(f.read_text())
        if o and "." not in o["apiVersion"].split("/")[0]
    ]
    assert len(core) >= 3 * len(OVERLAYS)


def test_newest_kubernetes_version_is_recent():
    major, minor, _ = (int(part) for part in NEWEST_VERSION.split("."))
    assert (major, minor) >= (1, 37)


K8S_BROKEN = sorted((FIXTURES / "k8s-broken").glob("*.yaml"))
CRD_BROKEN = sorted((FIXTURES / "crd-broken").glob("*.yaml"))


@pytest.fixture(scope="module")
def k8s_broken_run():
    """One kubernetes-validate run over every broken fixture (each tool start costs a second)."""
    return kubernetes_validate(K8S_BROKEN, OLDEST_VERSION)


@pytest.mark.parametrize("fixture", K8S_BROKEN, ids=lambda p: p.stem)
def test_kubernetes_validate_rejects_broken_fixture(fixture, k8s_broken_run):
    problems, output = k8s_broken_run
    assert any(str(fixture) in problem and expectation(fixture) in problem for problem in problems), output


def test_custom_resources_match_their_published_schemas(built_files):
    result = validate_crds(built_files)
    assert result.returncode == 0, result.stdout + result.stderr
    # Every Traefik and Gateway API object of every overlay was checked, none skipped.
    expected = sum(
        1
        for f in built_files
        for o in yaml.safe_load_all(f.read_text())
        if o and o["apiVersion"].startswith(("traefik.io/", "gateway.networking.k8s.io/"))
    )
    assert expected >= 9
    assert f"checked {expected} custom objects, 0 invalid" in result.stdout


@pytest.fixture(scope="module")
def crd_broken_run():
    return validate_crds(CRD_BROKEN)


def test_crd_schema_check_fails_on_broken_fixtures(crd_broken_run):
    assert crd_broken_run.returncode == 1, crd_broken_run.stdout + crd_broken_run.stderr
    assert f"checked {len(CRD_BROKEN)} custom objects, {len(CRD_BROKEN)} invalid" in crd_broken_run.stdout


@pytest.mark.parametrize("fixture", CRD_BROKEN, ids=lambda p: p.stem)
def test_crd_schema_check_rejects_broken_fixture(fixture, crd_broken_run):
    lines = [line for line in crd_broken_run.stdout.splitlines() if line.startswith(f"FAIL {fixture}: ")]
    assert any(expectation(fixture) in line for line in lines), crd_broken_run.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_is_zero_downtime(overlay):
    problems = zdd_manifest_check.check(objects(overlay), allow_recreate=overlay in EXPECTS_DOWNTIME)
    assert problems == []


def test_recreate_is_flagged_when_downtime_is_not_expected():
    problems = zdd_manifest_check.check(objects("recreate/v1"))
    assert problems == ["Deployment/zdd-demo: strategy Recreate stops every pod before starting new ones (downtime)"]


CHECKER_FIXTURES = sorted((FIXTURES / "checker-broken").iterdir())


@pytest.mark.parametrize("fixture", CHECKER_FIXTURES, ids=lambda p: p.stem)
def test_checker_rejects_broken_fixture(fixture, tmp_path):
    if fixture.is_dir():
        state = tmp_path / "state.yaml"
        state.write_text(build(fixture.relative_to(KUBERNETES).as_posix()))
        expected = expectation(fixture / "kustomization.yaml")
    else:
        state, expected = fixture, expectation(fixture)
    # Through the command line, as CI or a person would run it.
    exit_code = zdd_manifest_check.main([str(state)])
    problems = zdd_manifest_check.check(zdd_manifest_check.load_objects([state]))
    assert exit_code == 1
    assert any(expected in problem for problem in problems), problems


def test_checker_reports_bad_input_with_exit_2(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [unclosed\n")
    assert zdd_manifest_check.main([str(broken)]) == 2


@pytest.mark.parametrize(("text", "seconds"), [("250ms", 0.25), ("5s", 5), ("1m30s", 90), ("2h", 7200), ("1.5s", 1.5)])
def test_durations_are_humantime(text, seconds):
    assert zdd_manifest_check.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "five", "5 s", "s5", ""])
def test_malformed_durations_are_rejected(text):
    with pytest.raises(ValueError):
        zdd_manifest_check.parse_duration(text)

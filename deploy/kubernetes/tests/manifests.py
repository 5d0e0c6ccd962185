"""Shared helpers for the manifest tests: where things are, building overlays, running the tools."""

from __future__ import annotations

import concurrent.futures
import copy
import functools
import os
import shutil
import subprocess
from pathlib import Path

import yaml

TESTS = Path(__file__).resolve().parent
KUBERNETES = TESTS.parent  # deploy/kubernetes
REPO = KUBERNETES.parent.parent
FIXTURES = TESTS / "fixtures"
CRD_SCHEMAS = TESTS / "crd-schemas"

# Folders under deploy/kubernetes that are building blocks or someone else's, not strategies.
NOT_STRATEGIES = {"base", "versions", "components", "tests", "rbac"}
# Overlays where downtime is what the demo shows.
EXPECTS_DOWNTIME = {"recreate/v1", "recreate/v2"}
# API groups of custom resources; kubernetes-validate has no schema for them, validate-crds.mjs has.
CUSTOM_GROUPS = ("traefik.io/", "gateway.networking.k8s.io/")


def tool(name: str) -> str:
    """A tool from the project's virtualenv, else from PATH."""
    local = REPO / ".venv" / "bin" / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: run scripts/install-test-deps.sh")
    return found


def discover_overlays() -> list[str]:
    """Every kustomization of a strategy, as a path relative to deploy/kubernetes."""
    overlays = []
    for path in sorted(KUBERNETES.rglob("kustomization.yaml")):
        relative = path.parent.relative_to(KUBERNETES)
        if relative.parts and relative.parts[0] not in NOT_STRATEGIES:
            overlays.append(relative.as_posix())
    return overlays


def kustomize(directory: Path) -> str:
    result = subprocess.run([tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return result.stdout


@functools.cache
def build(overlay: str) -> str:
    """The YAML `kubectl kustomize` builds for an overlay (relative to deploy/kubernetes)."""
    return kustomize(KUBERNETES / overlay)


def prebuild(overlays: list[str]) -> None:
    """Fills build()'s cache with a few kubectl processes at once (each one is mostly start-up)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(build, overlays))


# libyaml's loader when PyYAML has it: pure-Python parsing dominates the run time otherwise.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse(text: str) -> list[dict]:
    return [doc for doc in yaml.load_all(text, Loader=YAML_LOADER) if doc]


@functools.cache
def _parsed(overlay: str) -> tuple[dict, ...]:
    return tuple(parse(build(overlay)))


def objects(overlay: str) -> list[dict]:
    """The overlay's objects, freshly copied so that callers may change them."""
    return copy.deepcopy(list(_parsed(overlay)))


def expectation(path: Path) -> str:
    """The `# expect: ...` line a broken fixture starts with: what its check must report."""
    for line in path.read_text().splitlines():
        if line.startswith("# expect: "):
            return line.removeprefix("# expect: ").strip()
    raise ValueError(f"{path} has no '# expect: ' line")


def kubernetes_validate(files: list[Path], version: str) -> tuple[list[str], str]:
    """(problems, full output) of `kubernetes-validate --strict` for one Kubernetes version.

    The tool only warns when it has no schema for an apiVersion, which is also what a removed API
    (extensions/v1beta1) looks like; such warnings count as problems except for custom resources,
    which validate-crds.mjs checks against their own schemas.
    """
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    problems = []
    for line in output.splitlines():
        if line.startswith("ERROR"):
            problems.append(line)
        elif line.startswith("WARN"):
            custom = any(f"api version {group}" in line for group in CUSTOM_GROUPS)
            if not (custom and "Couldn't find schema" in line):
                problems.append(line)
    if result.returncode != 0 and not problems:
        problems.append(f"kubernetes-validate exited {result.returncode}: {output.strip()}")
    return problems, output


def validate_crds(files: list[Path]) -> subprocess.CompletedProcess:
    node_modules = CRD_SCHEMAS / "node_modules"
    if not node_modules.exists():
        raise FileNotFoundError(f"{node_modules} missing: run scripts/install-test-deps.sh")
    return subprocess.run(
        ["node", str(CRD_SCHEMAS / "validate-crds.mjs"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )

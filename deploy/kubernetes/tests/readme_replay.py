"""Replays the shell commands of a Markdown page against the built manifests, offline.

A page's ```sh blocks are read in order and every command is interpreted against a simulated
cluster state: `kubectl apply -k` adds what the overlay builds, `scale`, `patch` and `delete`
change it, and every other command must name objects, label selectors, ports and JSON-patch paths
that exist at that point. After each change the zero-downtime checker runs on the new state, so a
README that scales a version down while a router still sends to it fails here, not in a demo.

A block whose first line is `# alternative: ...` (a rollback, an abort) is replayed on a copy of the
state and does not carry over to the blocks after it.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import zdd_manifest_check
from manifests import KUBERNETES, REPO, objects

KIND_ALIASES = {
    "deployment": "Deployment",
    "deployments": "Deployment",
    "deploy": "Deployment",
    "service": "Service",
    "services": "Service",
    "svc": "Service",
    "pdb": "PodDisruptionBudget",
    "poddisruptionbudget": "PodDisruptionBudget",
    "traefikservice": "TraefikService",
    "traefikservices": "TraefikService",
    "ingressroute": "IngressRoute",
    "ingressroutes": "IngressRoute",
    "httproute": "HTTPRoute",
    "httproutes": "HTTPRoute",
    "gateway": "Gateway",
    "gateways": "Gateway",
}
# Things the cluster has that these manifests do not create (nodes, CRDs, Traefik's own objects).
EXTERNAL_KINDS = {"nodes", "node", "crd", "crds", "gatewayclass", "gatewayclasses", "namespaces"}
# Commands a README may use beyond kubectl, zdd, curl and minikube: set-up only, not replayed.
SETUP_COMMANDS = {"helm", "cargo"}


class ReplayError(AssertionError):
    pass


@dataclass
class Command:
    source: str  # "file:line"
    text: str
    alternative: bool


def shell_commands(page: Path) -> list[Command]:
    """The commands of every ```sh block, with continuation lines joined."""
    commands: list[Command] = []
    in_block = False
    alternative = False
    first_line = False
    pending = ""
    pending_line = 0
    for number, raw in enumerate(page.read_text().splitlines(), start=1):
        line = raw.strip()
        if line.startswith("```"):
            in_block = line == "```sh" if not in_block else False
            alternative, first_line = False, in_block
            continue
        if not in_block:
            continue
        if first_line:
            first_line = False
            if line.startswith("# alternative:"):
                alternative = True
                continue
        if not line or line.startswith("#"):
            continue
        if not pending:
            pending_line = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        where = page.relative_to(REPO) if page.is_relative_to(REPO) else page
        commands.append(Command(f"{where}:{pending_line}", pending + line, alternative))
        pending = ""
    return commands


def _json_pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ReplayError(f"JSON pointer {path!r} must start with /")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _resolve(document, parts: list[str]):
    node = document
    for part in parts:
        if isinstance(node, list):
            index = int(part)
            if not 0 <= index < len(node):
                raise ReplayError(f"index {index} is out of range (list of {len(node)})")
            node = node[index]
        elif isinstance(node, dict):
            if part not in node:
                raise ReplayError(f"no field {part!r} (has {sorted(node)})")
            node = node[part]
        else:
            raise ReplayError(f"cannot descend into {node!r}")
    return node


def apply_json_patch(document: dict, operations: list[dict]) -> None:
    for op in operations:
        parts = _json_pointer(op["path"])
        parent = _resolve(document, parts[:-1])
        last = parts[-1]
        if op["op"] in ("replace", "remove", "test"):
            _resolve(parent, [last])  # must exist
        if op["op"] == "replace":
            parent[int(last) if isinstance(parent, list) else last] = op["value"]
        elif op["op"] == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        elif op["op"] == "add":
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), op["value"])
            else:
                parent[last] = op["value"]
        elif op["op"] == "test":
            if _resolve(parent, [last]) != op["value"]:
                raise ReplayError(f"test failed at {op['path']}")
        else:
            raise ReplayError(f"JSON patch op {op['op']!r} is not replayed")


def apply_merge_patch(target: dict, patch: dict) -> None:
    """RFC 7386; for the dict-only patches READMEs use, strategic merge gives the same result."""
    for key, value in patch.items():
        if isinstance(value, list):
            raise ReplayError("a strategic-merge patch with a list is not replayed: use --type=json")
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            apply_merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


@dataclass
class Replay:
    page: Path
    allow_recreate: bool = False
    state: dict[tuple[str, str], dict] = field(default_factory=dict)
    variables: set[str] = field(default_factory=set)
    mentioned_headers: list[str] = field(default_factory=list)

    # --- state -------------------------------------------------------------------------------

    def objects(self) -> list[dict]:
        return list(self.state.values())

    def get(self, kind: str, name: str) -> dict:
        obj = self.state.get((kind, name))
        if obj is None:
            have = sorted(n for k, n in self.state if k == kind)
            raise ReplayError(f"{kind} {name} does not exist at this point (there are: {have})")
        return obj

    def check_state(self) -> None:
        if not self.state:
            return
        problems = zdd_manifest_check.check(self.objects(), allow_recreate=self.allow_recreate)
        if problems:
            raise ReplayError("the state after this command is not zero-downtime:\n  " + "\n  ".join(problems))

    def overlay_objects(self, path: str) -> list[dict]:
        if not path.startswith("deploy/kubernetes/"):
            raise ReplayError(f"kustomize path {path!r} must be given from the repository root")
        overlay = path.removeprefix("deploy/kubernetes/").rstrip("/")
        if not (KUBERNETES / overlay / "kustomization.yaml").is_file():
            raise ReplayError(f"{path} has no kustomization.yaml")
        return objects(overlay)

    # --- commands ----------------------------------------------------------------------------

    def run(self, command: Command) -> None:
        text = command.text
        assignment = re.fullmatch(r"([A-Z_]+)=\$\((.*)\)", text)
        if assignment:
            self.variables.add(assignment.group(1))
            text = assignment.group(2)
        pipeline = text.split("|")[0].strip()
        args = shlex.split(pipeline, comments=True)
        program = args[0]
        if "/" in program:  # one of the repository's scripts
            if not (REPO / program).is_file():
                raise ReplayError(f"{program} does not exist in the repository")
            return
        if program == "kubectl":
            self.kubectl(args[1:])
        elif program == "minikube":
            self.minikube(args[1:])
        elif program == "zdd":
            self.zdd(args[1:])
        elif program == "curl":
            self.curl(args[1:])
        elif program in SETUP_COMMANDS:
            pass
        else:
            raise ReplayError(f"command {program!r} is not one the replay knows")

    def _uses_known_url(self, url: str) -> None:
        names = re.findall(r"\$\{?([A-Z_]+)", url)
        for name in names:
            if name not in self.variables:
                raise ReplayError(f"${name} is used before it is set")
        if not names and not url.startswith(("http://", "localhost:", "127.0.0.1:")):
            raise ReplayError(f"URL {url!r} is neither a set variable nor a local address")

    def zdd(self, args: list[str]) -> None:
        if args[:1] != ["probe"]:
            raise ReplayError(f"zdd {' '.join(args)}: only `zdd probe` is used in the manifests' docs")
        if args[1:] == ["--help"]:
            return
        self._uses_known_url(args[1])
        options = dict(zip(args[2::2], args[3::2], strict=False))
        unknown = set(options) - {"--rate", "--duration", "--new-connection-ratio"}
        if unknown or not {"--rate", "--duration"} <= set(options):
            raise ReplayError(f"zdd probe options {sorted(options)}: need --rate, --duration")
        if int(options["--rate"]) <= 0:
            raise ReplayError("--rate must be positive")
        zdd_manifest_check.parse_duration(options["--duration"])
        if not 0 <= float(options.get("--new-connection-ratio", 0)) <= 1:
            raise ReplayError("--new-connection-ratio must be within 0..1")

    def curl(self, args: list[str]) -> None:
        url = [a for a in args if not a.startswith("-")][-1]
        if "/metrics" not in url:
            self._uses_known_url(url)
        for flag, value in zip(args, args[1:], strict=False):
            if flag == "-H":
                header = value.split(":")[0].strip()
                routes = json.dumps([o for o in self.objects() if o["kind"] in ("IngressRoute", "HTTPRoute")])
                if header not in routes:
                    raise ReplayError(f"header {header} is matched by no IngressRoute or HTTPRoute")
                self.mentioned_headers.append(header)

    def minikube(self, args: list[str]) -> None:
        if args[:1] != ["service"]:
            return  # start, image build...: cluster set-up
        name = args[1]
        namespace = args[args.index("-n") + 1] if "-n" in args else "default"
        if namespace != "default":
            return  # Traefik's own Service
        service = self.get("Service", name)
        if service["spec"].get("type") not in ("NodePort", "LoadBalancer"):
            raise ReplayError(f"`minikube service {name}` needs a NodePort or LoadBalancer Service")

    def kubectl(self, args: list[str]) -> None:
        namespace = args[args.index("-n") + 1] if "-n" in args else "default"
        if namespace != "default":
            return  # Traefik's namespace: not these manifests
        verb, rest = args[0], args[1:]
        handler = getattr(self, "kubectl_" + verb.replace("-", "_"), None)
        if handler is None:
            if verb in ("config", "drain", "uncordon", "cordon"):
                return
            raise ReplayError(f"kubectl {verb} is not replayed")
        handler(rest)

    def _kind_and_name(self, rest: list[str]) -> tuple[str, str | None, list[str]]:
        positional = [a for a in rest if not a.startswith("-")]
        first = positional[0]
        if "/" in first:
            kind, name = first.split("/", 1)
            return KIND_ALIASES.get(kind.lower(), kind), name, positional[1:]
        name = positional[1] if len(positional) > 1 else None
        return KIND_ALIASES.get(first.lower(), first), name, positional[2:]

    def kubectl_apply(self, rest: list[str]) -> None:
        if "-k" in rest:
            for obj in self.overlay_objects(rest[rest.index("-k") + 1]):
                self.state[(obj["kind"], obj["metadata"]["name"])] = obj
            self.check_state()
        elif "-f" in rest and rest[rest.index("-f") + 1].startswith("https://"):
            return  # a published install file (the Gateway API CRDs)
        else:
            raise ReplayError("kubectl apply: only -k <overlay> (or a published -f https://...) is replayed")

    def kubectl_delete(self, rest: list[str]) -> None:
        if "-k" in rest:
            for obj in self.overlay_objects(rest[rest.index("-k") + 1]):
                self.get(obj["kind"], obj["metadata"]["name"])
                del self.state[(obj["kind"], obj["metadata"]["name"])]
        else:
            kind, name, _ = self._kind_and_name(rest)
            self.get(kind, name)
            del self.state[(kind, name)]
        self.check_state()

    def kubectl_scale(self, rest: list[str]) -> None:
        kind, name, _ = self._kind_and_name(rest)
        replicas = [a for a in rest if a.startswith("--replicas=")]
        if kind != "Deployment" or not replicas:
            raise ReplayError("kubectl scale: expected a Deployment and --replicas=N")
        self.get(kind, name)["spec"]["replicas"] = int(replicas[0].split("=", 1)[1])
        self.check_state()

    def kubectl_patch(self, rest: list[str]) -> None:
        kind, name, _ = self._kind_and_name([a for a in rest if not a.startswith(("-p", "--type"))][:2])
        obj = self.get(kind, name)
        patch_type = "strategic"
        for index, arg in enumerate(rest):
            if arg.startswith("--type="):
                patch_type = arg.split("=", 1)[1]
            elif arg == "--type":
                patch_type = rest[index + 1]
        body = json.loads(rest[rest.index("-p") + 1])
        if patch_type == "json":
            apply_json_patch(obj, body)
        elif patch_type in ("merge", "strategic"):
            apply_merge_patch(obj, body)
        else:
            raise ReplayError(f"patch type {patch_type} is not replayed")
        self.check_state()

    def kubectl_rollout(self, rest: list[str]) -> None:
        kind, name, _ = self._kind_and_name(rest[1:])
        self.get(kind, name)

    def kubectl_logs(self, rest: list[str]) -> None:
        kind, name, _ = self._kind_and_name(rest)
        self.get(kind, name)

    def kubectl_port_forward(self, rest: list[str]) -> None:
        kind, name, ports = self._kind_and_name(rest)
        obj = self.get(kind, name)
        remote = ports[0].split(":")[-1]
        if kind == "Service":
            declared = {str(p["port"]) for p in obj["spec"]["ports"]}
        else:
            containers = obj["spec"]["template"]["spec"]["containers"]
            declared = {str(p["containerPort"]) for c in containers for p in c.get("ports", [])}
        if remote not in declared:
            raise ReplayError(f"{kind} {name} has no port {remote} (has {sorted(declared)})")

    def kubectl_get(self, rest: list[str]) -> None:
        what = [a for a in rest if not a.startswith("-")]
        kind_word = what[0].split("/")[0].lower()
        selector = rest[rest.index("-l") + 1] if "-l" in rest else None
        if kind_word in EXTERNAL_KINDS:
            return
        if kind_word in ("endpointslices", "endpointslice"):
            service = dict(pair.split("=") for pair in (selector or "").split(","))
            self.get("Service", service["kubernetes.io/service-name"])
            return
        if kind_word in ("pods", "pod", "po"):
            labels = [d["spec"]["template"]["metadata"]["labels"] for d in self.objects() if d["kind"] == "Deployment"]
        else:
            kind, name, _ = self._kind_and_name(what)
            if name:
                self.get(kind, name)
            labels = [o["metadata"].get("labels", {}) for o in self.objects() if o["kind"] == kind]
        if selector:
            wanted = dict(pair.split("=", 1) for pair in selector.split(","))
            if not any(zdd_manifest_check.selector_matches(wanted, have) for have in labels):
                raise ReplayError(f"label selector {selector} matches nothing")


def replay(page: Path, allow_recreate: bool = False) -> Replay:
    """Replays every command of `page`; raises ReplayError naming the README line that is wrong."""
    session = Replay(page, allow_recreate=allow_recreate)
    saved: Replay | None = None
    for command in shell_commands(page):
        if command.alternative and saved is None:
            saved = copy.deepcopy(session)
        elif not command.alternative and saved is not None:
            session, saved = saved, None
        try:
            session.run(command)
        except (ReplayError, KeyError, IndexError, ValueError) as err:
            raise ReplayError(f"{command.source}: {command.text}\n  {type(err).__name__}: {err}") from err
    return saved or session

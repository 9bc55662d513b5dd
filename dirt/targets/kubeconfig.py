"""The ``kubeconfig`` target: any real cluster, reached by a kubeconfig context.

Why it exists: a game day runs against staging or production, not a sandbox.
API-level faults (pods, workloads, namespaces, nodes) need nothing but the
kubeconfig.  The cluster-level operations the API cannot do depend entirely on
how the cluster is run (a managed cloud control plane, kubeadm hosts, an etcd
operator...), so dirt does not guess: the operator writes one shell command per
operation under ``settings.commands`` in dirt.yaml, and an operation without a
command is refused with a message saying which key to set::

    targets:
      staging:
        provider: kubeconfig
        allow: [pods, node, control-plane]
        settings:
          context: staging-eu
          commands:
            stop_component: ssh cp-1 sudo mv /etc/kubernetes/manifests/{component}.yaml /root/
            start_component: ssh cp-1 sudo mv /root/{component}.yaml /etc/kubernetes/manifests/
            component_running: ssh cp-1 sudo crictl ps --name {component} -q | grep -q .
            # a lost worker machine (node.poweroff) and a crashed process (container.kill)
            stop_node: virsh destroy {node}
            start_node: virsh start {node}
            node_running: virsh domstate {node} | grep -q running
            kill_container: ssh {node} sudo ctr -n k8s.io tasks kill --signal {signal} {container_id}

Commands run with ``bash -c`` in the project folder, with ``KUBECONFIG`` set to
this target's kubeconfig and a ``timeout`` (default 600 s).  They are Python
``str.format`` templates: ``{component}`` (component operations), ``{path}``
(snapshot operations), ``{node}`` (node operations) and, for ``kill_container``,
``{node} {namespace} {pod} {container} {container_id} {signal}`` are the only
placeholders, filled shell-quoted, and any
other brace is a configuration error at load time (write a literal brace, as in
``${HOME}``, doubled: ``${{HOME}}``).  ``component_running``,
``node_running`` and ``cluster_exists`` answer with their exit status (0: yes).

``capabilities`` is computed per instance from the configured commands (the
class attribute stays empty: without configuration this provider can do none of
them); a capability counts only when every command it needs is there
(``CAPABILITY_COMMANDS``).  Whether a fault family is *allowed* here is the
target's ``allow`` list, which the engine's guardrails check, together with a
confirmation, since this is never a sandbox.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import string
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator

from dirt.clients.commands import CommandResult, run
from dirt.clients.monitoring import url_problem
from dirt.config import SettingsCheck, TargetConfig
from dirt.core import safefile
from dirt.core.durations import Duration
from dirt.core.errors import CommandError, Problem, TargetError
from dirt.documents.problems import did_you_mean
from dirt.targets.base import CAPABILITIES, Settings, SnapshotInfo, Target, power_on_and_wait, running_container

#: Each operation a command can be configured for, and the placeholders its template may use.
OPERATIONS: dict[str, tuple[str, ...]] = {
    "stop_component": ("component",),
    "start_component": ("component",),
    "component_running": ("component",),
    "etcd_snapshot_save": ("path",),
    "etcd_snapshot_restore": ("path",),
    "etcd_wipe": (),
    "delete_cluster": (),
    "create_cluster": (),
    "cluster_exists": (),
    "kill_container": ("node", "namespace", "pod", "container", "container_id", "signal"),
    "stop_node": ("node",),
    "start_node": ("node",),
    "node_running": ("node",),
}

#: A capability holds when all of its commands are configured.
CAPABILITY_COMMANDS: dict[str, tuple[str, ...]] = {
    "components": ("stop_component", "start_component", "component_running"),
    "etcd_snapshot": ("etcd_snapshot_save", "etcd_snapshot_restore"),
    "etcd_wipe": ("etcd_wipe",),
    "cluster": ("delete_cluster", "create_cluster", "cluster_exists"),
    "containers": ("kill_container",),
    "node_power": ("stop_node", "start_node", "node_running"),
}


class Commands(Settings):
    """Shell command templates, one per cluster-level operation (all optional)."""

    stop_component: str | None = Field(None, description="Stop {component} (a crash).")
    start_component: str | None = Field(None, description="Start {component} again.")
    component_running: str | None = Field(None, description="Exit 0 when {component} runs.")
    etcd_snapshot_save: str | None = Field(None, description="Write an etcd snapshot to {path}.")
    etcd_snapshot_restore: str | None = Field(None, description="Restore etcd from the snapshot at {path}.")
    etcd_wipe: str | None = Field(None, description="Delete etcd's data.")
    delete_cluster: str | None = Field(None, description="Delete the whole cluster.")
    create_cluster: str | None = Field(None, description="Create the cluster again.")
    cluster_exists: str | None = Field(None, description="Exit 0 when the cluster exists.")
    kill_container: str | None = Field(
        None, description="Send {signal} to the main process of container {container_id} ({container} of pod "
                          "{namespace}/{pod}) on node {node}, through its container runtime.")
    stop_node: str | None = Field(None, description="Power node {node}'s machine off (a lost machine, not a drain).")
    start_node: str | None = Field(None, description="Power node {node}'s machine on again.")
    node_running: str | None = Field(None, description="Exit 0 when node {node}'s machine is powered on.")

    @field_validator("*")
    @classmethod
    def _known_placeholders(cls, template: str | None, info: Any) -> str | None:
        problem = _template_problem(template, OPERATIONS[info.field_name]) if template is not None else None
        if problem:
            raise ValueError(problem)
        return template


class KubeconfigSettings(Settings):
    kubeconfig: str | None = Field(
        None, description="Kubeconfig file (relative to dirt.yaml's folder); default $KUBECONFIG or ~/.kube/config."
    )
    context: str | None = Field(None, description="Context to use; default the kubeconfig's current-context.")
    commands: Commands = Field(default_factory=Commands)
    timeout: Duration = Field(600.0, gt=0, description="Limit for each command.")


class KubeconfigTarget(Target):
    provider = "kubeconfig"
    Settings = KubeconfigSettings
    #: Nothing without configuration; each instance computes its own (see the module docstring).
    capabilities = frozenset()

    def __init__(self, name: str, config: TargetConfig, root: Path) -> None:
        super().__init__(name, config, root)
        self.settings: KubeconfigSettings
        self.commands: dict[str, str] = self.settings.commands.model_dump(exclude_none=True)  # templates checked
        self.capabilities = frozenset(  # type: ignore[misc]  # per instance, on purpose
            capability for capability, needed in CAPABILITY_COMMANDS.items()
            if all(op in self.commands for op in needed)
        )
        self._kubeconfig = _kubeconfig_paths(self.settings.kubeconfig, root)

    @classmethod
    def check_settings(cls, settings: KubeconfigSettings, check: SettingsCheck) -> None:
        """The kubeconfig is YAML, has the context, and the files and server URL it names are good.

        A kubeconfig named in the settings must be right now; one found through
        ``$KUBECONFIG`` or ``~/.kube/config`` may be another machine's business (CI),
        so its problems are warnings until a drill runs.
        """
        given = settings.kubeconfig is not None
        paths = [settings.kubeconfig] if settings.kubeconfig else _kubeconfig_paths(None, check.root).split(os.pathsep)
        where: tuple[str, ...] = ("kubeconfig",) if given else ()  # implicit: the settings as a whole
        documents = []
        for value in paths:
            loaded = check.yaml_file(where, value, warn=not given)
            if loaded is not None:
                documents.append(loaded)
        if not documents:
            return
        contexts: dict[str, tuple[Any, Any, Path]] = {}
        current = None
        for data, positions, path in documents:
            if not isinstance(data, dict):
                check.problem(Problem(str(path), 1, 1, "a kubeconfig must be a YAML mapping (apiVersion, clusters, "
                                      "contexts, users)", severity="error" if given else "warning"))
                continue
            current = current or data.get("current-context")
            for entry in data.get("contexts") or []:
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    contexts.setdefault(entry["name"], (data, positions, path))
        context = settings.context or current
        source = " ".join(str(p) for _, _, p in documents)
        if not context:
            check.warning(where, f"{source} has no current-context", "set settings.context")
        elif context not in contexts:
            say = check.error if given else check.warning
            say(("context",) if settings.context else where, f"context {context!r} is not in {source}",
                did_you_mean(context, contexts) or f"contexts there: {', '.join(sorted(contexts)) or 'none'}")
        else:
            origin = f"the kubeconfig of target {check.target!r}" + (" (settings.kubeconfig)" if given else "")
            _check_context(check, context, *contexts[context], origin=origin, severity="error" if given else "warning")

    # -- identity ---------------------------------------------------------------------
    def cluster_name(self) -> str:
        """The context's name: what ``kubectl config current-context`` shows a person."""
        context = self.settings.context or _merged(self._kubeconfig).get("current-context")
        if not context:
            raise TargetError(
                f"target {self.name!r} (kubeconfig): {self._kubeconfig} has no current-context; set settings.context"
            )
        return str(context)

    def describe(self) -> dict[str, Any]:
        """Name, provider, context and API server URL; nothing from a user entry."""
        info: dict[str, Any] = {"name": self.name, "provider": self.provider, "context": None, "server": None}
        try:
            info["context"] = self.cluster_name()
            info["server"] = _server(_merged(self._kubeconfig), info["context"])
        except TargetError:
            pass
        return info

    def prepare(self) -> None:
        config = _merged(self._kubeconfig)
        if not config:
            raise TargetError(f"target {self.name!r} (kubeconfig): no kubeconfig at {self._kubeconfig}")
        context = self.cluster_name()
        if _named(config, "contexts", context) is None:
            raise TargetError(f"target {self.name!r} (kubeconfig): context {context!r} is not in {self._kubeconfig}")

    # -- Kubernetes API ---------------------------------------------------------------
    def kubeconfig_path(self) -> str | None:
        return self._kubeconfig

    def kube_context(self) -> str | None:
        return self.settings.context

    def why_not(self, capability: str) -> str:
        """Which ``settings.commands`` to add for ``capability``."""
        missing = [op for op in CAPABILITY_COMMANDS.get(capability, ()) if op not in self.commands]
        if not missing:
            return super().why_not(capability)
        names = [f"settings.commands.{op}" for op in missing]
        keys = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
        return (f"target {self.name!r} (kubeconfig) has no command to {CAPABILITIES.get(capability, capability)}; "
                f"set {keys} in dirt.yaml")

    # -- cluster-level operations -------------------------------------------------------
    def stop_component(self, component: str, *, graceful: bool = False) -> None:
        self._run("stop_component", component=component)

    def start_component(self, component: str) -> None:
        self._run("start_component", component=component)
        if component == "kube-apiserver":
            self.reset_kube()

    def component_running(self, component: str) -> bool:
        return self._run("component_running", check=False, component=component).returncode == 0

    def etcd_snapshot_save(self, path: Path) -> SnapshotInfo:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._run("etcd_snapshot_save", path=str(path))
        if not path.exists():  # the command may keep the snapshot elsewhere, named by {path}
            return SnapshotInfo(path=str(path), hash=0, revision=0, total_keys=0, size_bytes=0, created_at=time.time())
        stat = path.stat()
        status = _etcdutl_status(path)
        return SnapshotInfo(path=str(path), hash=int(status.get("hash", 0)), revision=int(status.get("revision", 0)),
                            total_keys=int(status.get("totalKey", 0)), size_bytes=stat.st_size,
                            created_at=stat.st_mtime)

    def etcd_snapshot_restore(self, path: Path) -> None:
        self._run("etcd_snapshot_restore", path=str(path))
        self.reset_kube()

    def etcd_wipe(self) -> None:
        self._run("etcd_wipe")

    def delete_cluster(self) -> None:
        self._run("delete_cluster")
        self.reset_kube()

    def create_cluster(self) -> None:
        self._run("create_cluster")
        self.reset_kube()

    def cluster_exists(self) -> bool:
        return self._run("cluster_exists", check=False).returncode == 0

    def kill_container(self, pod: dict[str, Any], container: str, *, signal: str = "SIGKILL") -> str:
        node, _, cid = running_container(pod, container)
        self._run("kill_container", node=node, namespace=str(pod["metadata"].get("namespace", "")),
                  pod=str(pod["metadata"]["name"]), container=container, container_id=cid, signal=signal)
        return cid

    def stop_node(self, node: str) -> None:
        self._run("stop_node", node=node)

    def start_node(self, node: str) -> None:
        """Power the machine on, then wait (within the command timeout) until its Node is Ready again."""
        power_on_and_wait(self.kube(), node, lambda: self._run("start_node", node=node), self.settings.timeout,
                          hint=f"the start_node command of target {self.name!r} ran; see the node's kubelet log")

    def node_running(self, node: str) -> bool:
        return self._run("node_running", check=False, node=node).returncode == 0

    def _run(self, operation: str, *, check: bool = True, **values: str) -> CommandResult:
        """Fill the operation's template, run it with ``bash -c``; failures are one clean line."""
        template = self.commands.get(operation)
        if template is None:
            raise TargetError(
                f"target {self.name!r} (kubeconfig) cannot {operation}: configure commands.{operation} in dirt.yaml"
            )
        command = template.format(**{k: shlex.quote(v) for k, v in values.items()})
        env = {**os.environ, "KUBECONFIG": self._kubeconfig}
        limit = self.settings.timeout
        try:
            result = run(["bash", "-c", command], timeout=limit, env=env, cwd=self.root, what=operation)
        except CommandError as exc:
            if exc.timed_out:
                raise TargetError(f"target {self.name!r} (kubeconfig): {operation} timed out after {limit:g}s") \
                    from None
            raise TargetError(f"target {self.name!r} (kubeconfig): {operation}: {exc}") from None
        if check and result.returncode != 0:
            raise TargetError(f"target {self.name!r} (kubeconfig): {operation} failed (exit {result.returncode}): "
                              f"{_last_line(result.stderr.strip() or result.stdout)}")
        return result


def _template_problem(template: str, allowed: tuple[str, ...]) -> str | None:
    offer = " or ".join(f"{{{a}}}" for a in allowed) or "no placeholders"
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        return f"{exc} (write a literal brace doubled: {{{{ or }}}})"
    for field in fields:
        if field not in allowed:
            return f"unknown placeholder {{{field}}}; this command may use {offer} (write a literal brace doubled)"
    return None


#: Files a kubeconfig's cluster and user entries may name (relative to the kubeconfig's folder).
_CLUSTER_FILES = ("certificate-authority",)
_USER_FILES = ("client-certificate", "client-key", "tokenFile")


def _check_context(check: SettingsCheck, context: str, data: dict[str, Any], positions: Any, path: Path, *,
                   origin: str, severity: str) -> None:
    """The context's cluster has a good server URL, and the files its cluster and user name can be read."""
    def say(where: tuple[Any, ...], message: str, hint: str = "") -> None:
        mark = positions.of_value(where)
        dotted = ".".join(str(p) for p in where)
        check.problem(Problem(str(path), mark.line, mark.column, f"{dotted}: {message}",
                              "; ".join(h for h in (hint, origin) if h), severity))

    def located(section: str, name: Any) -> tuple[int, dict[str, Any]] | None:
        for i, entry in enumerate(data.get(section) or []):
            if isinstance(entry, dict) and entry.get("name") == name and isinstance(entry.get(section[:-1]), dict):
                return i, entry[section[:-1]]
        return None

    found = located("contexts", context)
    if found is None:
        return
    ctx = found[1]
    cluster = located("clusters", ctx.get("cluster"))
    if cluster is None:
        say(("contexts", found[0], "context", "cluster"), f"context {context!r} names cluster "
            f"{ctx.get('cluster')!r}, which this kubeconfig does not define")
    else:
        i, entry = cluster
        server = entry.get("server")
        problem = url_problem(server) if isinstance(server, str) else "a cluster needs a 'server' URL"
        if problem:
            say(("clusters", i, "cluster", "server"), problem)
        _check_files(check, say, ("clusters", i, "cluster"), entry, _CLUSTER_FILES, path, severity)
    user = located("users", ctx.get("user"))
    if user is not None:
        _check_files(check, say, ("users", user[0], "user"), user[1], _USER_FILES, path, severity)


def _check_files(check: SettingsCheck, say: Any, where: tuple[Any, ...], entry: dict[str, Any],
                 keys: tuple[str, ...], kubeconfig: Path, severity: str) -> None:
    for key in keys:
        value = entry.get(key)
        if not isinstance(value, str) or not value:
            continue
        path = kubeconfig.parent / Path(value).expanduser()
        try:
            safefile.read_bytes(path)
        except safefile.UnreadableFile as exc:
            say(where + (key,), f"{path}: {exc.message}", exc.hint)


def _kubeconfig_paths(setting: str | None, root: Path) -> str:
    """The kubeconfig file(s), ``os.pathsep``-joined like $KUBECONFIG, ``~`` expanded."""
    if setting:
        return str(root / Path(setting).expanduser())
    env = os.environ.get("KUBECONFIG", "")
    paths = [str(Path(p).expanduser()) for p in env.split(os.pathsep) if p]
    return os.pathsep.join(paths) if paths else str(Path("~/.kube/config").expanduser())


def _merged(paths: str) -> dict[str, Any]:
    """The kubeconfig files merged as kubectl does: the first file to set a value wins."""
    merged: dict[str, Any] = {}
    for path in paths.split(os.pathsep):
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(data, dict):
            continue
        if data.get("current-context") and not merged.get("current-context"):
            merged["current-context"] = data["current-context"]
        for section in ("contexts", "clusters"):
            known = {e.get("name") for e in merged.get(section, [])}
            for entry in data.get(section) or []:
                if isinstance(entry, dict) and entry.get("name") not in known:
                    merged.setdefault(section, []).append(entry)
    return merged


def _named(config: dict[str, Any], section: str, name: str) -> dict[str, Any] | None:
    for entry in config.get(section) or []:
        if entry.get("name") == name:
            return entry.get(section[:-1]) or {}
    return None


def _server(config: dict[str, Any], context: str) -> str | None:
    ctx = _named(config, "contexts", context) or {}
    cluster = _named(config, "clusters", str(ctx.get("cluster", ""))) or {}
    server = cluster.get("server")
    return str(server) if server else None


def _etcdutl_status(path: Path) -> dict[str, Any]:
    """``etcdutl snapshot status`` when an etcdutl is on PATH; empty otherwise."""
    etcdutl = shutil.which("etcdutl")
    if etcdutl is None:
        return {}
    try:
        result = run([etcdutl, "snapshot", "status", str(path), "-w", "json"], timeout=60, what="etcdutl")
        status = json.loads(result.stdout) if result.ok else {}
    except (CommandError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no output)"

"""The kind target against a real kind cluster, made on this machine from dirt's offline node image.

``dirt kind up`` (dirt.yaml's ``kind`` target: a control plane and three workers, with Prometheus,
Alertmanager and kube-state-metrics beside it on 127.0.0.1) builds or loads the node image and starts a
Docker daemon when none answers.  Then, on the real cluster:

- what the drills do not show of the kind target's capabilities: a worker powered off and on, a container
  killed through containerd, etcd read, snapshot paths outside the node's /tmp tmpfs (and the old path
  failing);
- the example drills, with the same scenario files as on the sandbox (``--target kind``): control-plane-down
  (components stop and start), etcd-loss (etcd wiped, snapshot saved, checked and restored),
  namespace-deletion, node-loss (a worker) and cluster-deletion (the cluster deleted and created again),
  each with its alerts verified by the Prometheus beside the cluster;
- a drill from a project outside this repository: an app with its own CRD, a StatefulSet and a Secret,
  the cluster deleted and the app restored from a resources backup.

``dirt kind down`` at the end deletes the cluster and its monitoring and stops the Docker daemon dirt
started.  The fake-CLI tests (tests/unit/test_target_kind.py) keep only what a real cluster cannot show:
the CLIs' error paths.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from dirt.config import load_config
from dirt.core.errors import TargetError
from dirt.sandbox import images, process
from dirt.sandbox.cluster import sandbox_home
from dirt.targets import kind as kind_module
from dirt.targets.base import make_target
from tests.conftest import REPO

pytestmark = [pytest.mark.integration]

DIRT = [sys.executable, "-m", "dirt"]
CLUSTER = "dirt-kind"
WORKER = f"{CLUSTER}-worker"  # the storefront's worker (dirt.dev/node: real)
CONTROL_PLANE = f"{CLUSTER}-control-plane"
NODES = sorted([CONTROL_PLANE, WORKER, f"{CLUSTER}-worker2", f"{CLUSTER}-worker3"])


def dirt(*args: str, cwd: Path = REPO, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "NO_COLOR": "1"})


@pytest.fixture(scope="module")
def kind() -> kind_module.KindTarget:
    up = dirt("kind", "up", "--target", "kind")
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-4000:]
    loaded = load_config(str(REPO / "dirt.yaml"))
    name, config = loaded.target("kind")
    target = make_target(name, config, loaded.root)
    assert isinstance(target, kind_module.KindTarget)
    target.prepare()
    dockerd = process.read_pid(sandbox_home() / "docker" / "dockerd.pid")  # None: a daemon dirt did not start
    monitors = [target.monitoring().pid(name) for name in ("prometheus", "alertmanager", "kube-state-metrics")]
    yield target
    down = dirt("kind", "down", "--target", "kind")
    assert down.returncode == 0, down.stderr[-3000:]
    left = [pid for pid in [*monitors, dockerd] if pid and process.alive(pid)]
    assert not left, f"still running after `dirt kind down`: {left}"
    if dockerd is None:  # someone else's daemon: still there, without our cluster
        clusters = subprocess.run([kind_module.kind_cli(), "get", "clusters"], capture_output=True, text=True)
        assert CLUSTER not in clusters.stdout.split()


def kubectl(target: kind_module.KindTarget, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["kubectl", "--kubeconfig", target.kubeconfig_path(), *args], capture_output=True,
                          text=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stderr[-2000:]
    return done


def wait_for(what: str, done, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"waited {timeout:g}s for {what}"
        time.sleep(1)


def report(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text())


def test_the_cluster_is_real_and_kept_out_of_the_private_ranges(kind) -> None:
    assert kind.cluster_exists()
    assert sorted(kind.cluster_nodes()) == NODES
    nodes = json.loads(kubectl(kind, "get", "nodes", "-o", "json").stdout)["items"]
    assert all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
               for n in nodes)
    addresses = [a["address"] for n in nodes for a in n["status"]["addresses"] if a["type"] == "InternalIP"]
    assert all(a.startswith("198.18.") for a in addresses), addresses
    assert next(n for n in nodes if n["metadata"]["name"] == WORKER)["metadata"]["labels"]["dirt.dev/node"] == "real"
    # a pod on the worker reaches the API through its Service (CNI, kube-proxy and CoreDNS work)
    wait_for("CoreDNS", lambda: kubectl(kind, "-n", "kube-system", "rollout", "status", "deployment/coredns",
                                        "--timeout=5s", check=False).returncode == 0)
    for component in kind_module.KIND_COMPONENTS:
        assert kind.component_running(component), component
    # the monitoring beside it scrapes every part of the cluster, from outside
    targets = json.loads(subprocess.run(["curl", "-sf", f"{kind.prometheus.url}/api/v1/targets"], capture_output=True,
                                        text=True, timeout=30).stdout)["data"]["activeTargets"]
    assert {t["labels"]["job"]: t["health"] for t in targets} == {
        job: "up" for job in ("apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kube-state-metrics",
                              "prometheus", "alertmanager")}


def test_a_killed_container_is_restarted_by_its_kubelet(kind) -> None:
    # dirt.local/busybox is preloaded in dirt's node image: nothing is pulled
    kubectl(kind, "run", "sleeper", "--image", images.BUSYBOX, "--image-pull-policy", "Never",
            "--overrides", json.dumps({"spec": {"nodeSelector": {"dirt.dev/node": "real"}}}), "--", "sleep", "3600")
    kubectl(kind, "wait", "pod/sleeper", "--for=condition=Ready", "--timeout=120s")
    pod = json.loads(kubectl(kind, "get", "pod", "sleeper", "-o", "json").stdout)
    cid = kind.kill_container(pod, "sleeper")
    assert cid in pod["status"]["containerStatuses"][0]["containerID"]

    def restarted() -> bool:
        status = json.loads(kubectl(kind, "get", "pod", "sleeper", "-o", "json").stdout)["status"]
        return status["containerStatuses"][0]["restartCount"] >= 1
    wait_for("the kubelet to restart the container", restarted)
    kubectl(kind, "delete", "pod", "sleeper", "--wait=false")


def test_a_worker_is_powered_off_and_on(kind) -> None:
    kind.stop_node(WORKER)
    assert not kind.node_running(WORKER)

    def not_ready() -> bool:
        node = json.loads(kubectl(kind, "get", "node", WORKER, "-o", "json").stdout)
        return any(c["type"] == "Ready" and c["status"] != "True" for c in node["status"]["conditions"])
    wait_for("the worker to be NotReady", not_ready, timeout=120)
    kind.start_node(WORKER)  # waits until the Node is Ready again
    assert kind.node_running(WORKER)
    with pytest.raises(TargetError, match="control-plane node"):
        kind.stop_node(CONTROL_PLANE)


def test_snapshot_paths_outside_the_nodes_tmpfs(kind, tmp_path, monkeypatch) -> None:
    """kind mounts a tmpfs on /tmp in every node: docker cp cannot see a snapshot saved there."""
    monkeypatch.setattr(kind_module, "NODE_SNAPSHOT", "/tmp/dirt-snapshot.db")  # the path dirt once used
    with pytest.raises(TargetError, match="Could not find the file /tmp/dirt-snapshot.db"):
        kind.etcd_snapshot_save(tmp_path / "old.db")
    monkeypatch.undo()
    info = kind.etcd_snapshot_save(tmp_path / "new.db")
    assert info.total_keys > 100 and info.size_bytes > 0
    assert kind.etcd_snapshot_status(tmp_path / "new.db").hash == info.hash
    assert kind.etcd_read("/registry/namespaces/kube-system") is not None
    assert kind.etcd_read("/registry/namespaces/no-such-namespace") is None


#: The example drills and the alert each must see fire, from the Prometheus beside the cluster.
DRILLS = {"control-plane-down": "KubeAPIDown", "etcd-loss": "etcdDataLoss",
          "namespace-deletion": "ShopWorkloadsMissing", "node-loss": "KubeDeploymentReplicasMismatch",
          "cluster-deletion": "KubeAPIDown"}


@pytest.mark.parametrize("drill", list(DRILLS))
def test_the_example_drill_passes_on_kind(kind, drill, tmp_path) -> None:
    run = dirt("run", f"scenarios/{drill}.yaml", "--target", "kind", "--report-dir", str(tmp_path),
               "--display", "plain")
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-3000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    data = report(run_dir)
    assert data["verdict"] == "passed" and data["target"]["provider"] == "kind"
    (alert,) = [e for e in data["expectations"] if e["kind"] == "alert" and e["alert"] == DRILLS[drill]]
    assert alert["passed"] and alert["sources"]["prometheus"]["fired"], alert  # seen by the Prometheus beside it
    if drill == "control-plane-down":  # the storefront on the real worker kept serving through kind's port
        (probe,) = data["availability"]
        assert probe["url"] == "http://127.0.0.1:18090/" and probe["samples"] > 20 and probe["ratio"] >= 0.99, probe
    if drill == "node-loss":  # a worker of the shop, never the control plane or the storefront's worker
        (lost,) = data["faults"]
        assert lost["verify_detail"] in (f"deleted: {CLUSTER}-worker2", f"deleted: {CLUSTER}-worker3"), lost


def _tested_block(marker: str) -> str:
    """The YAML block docs/how-to/ci-kind.md marks ``<!-- tested: MARKER -->``: what the page shows is what runs."""
    text = (REPO / "docs" / "how-to" / "ci-kind.md").read_text()
    after = text.split(f"<!-- tested: {marker} -->", 1)[1]
    return after.split("```yaml\n", 1)[1].split("\n```", 1)[0] + "\n"


_EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


def run_composite_action(inputs: dict[str, str], *, action_path: Path, workspace: Path, python: Path,
                         artifacts: Path) -> dict:
    """The steps of action.yml as a GitHub runner runs them: inputs (defaults, then the step's ``with:``)
    and step outputs substituted into ``${{ }}``, each ``run:`` written to a file and run by
    ``bash --noprofile --norc -eo pipefail``, ``$GITHUB_OUTPUT`` read back, later steps skipped after a
    failure unless ``if: always()``.  The ``uses:`` steps need GitHub's servers: actions/setup-python
    stands for the ``python`` folder first on PATH, actions/upload-artifact for a copy into ``artifacts``."""
    action = yaml.safe_load((REPO / "action.yml").read_text())
    values = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()} | inputs
    outputs: dict[str, dict[str, str]] = {}
    ran: list[tuple[str, int | None]] = []
    failed = False

    def expression(match: re.Match[str]) -> str:
        words = match.group(1).split(".")
        if words[0] == "inputs":
            return values[words[1]]
        if words[0] == "steps" and words[2] == "outputs":
            return outputs.get(words[1], {}).get(words[3], "")
        raise AssertionError(f"an expression the runner stand-in does not know: {match.group(0)}")

    for number, step in enumerate(action["runs"]["steps"]):
        name = step.get("name") or step.get("uses", str(number))
        if failed and "always()" not in str(step.get("if", "")):
            ran.append((name, None))
            continue
        with_ = {k: _EXPRESSION.sub(expression, str(v)) for k, v in (step.get("with") or {}).items()}
        if "uses" in step:
            if step["uses"].startswith("actions/upload-artifact"):
                source = workspace / with_["path"]
                if source.is_dir():
                    shutil.copytree(source, artifacts / with_["name"], dirs_exist_ok=True)
            ran.append((name, 0))
            continue
        script = workspace.parent / f"step-{number}.sh"
        script.write_text(_EXPRESSION.sub(expression, step["run"]))
        output = workspace.parent / f"step-{number}.out"
        output.write_text("")
        env = {**os.environ, "PATH": f"{python}{os.pathsep}{os.environ['PATH']}",
               "GITHUB_ACTION_PATH": str(action_path), "GITHUB_WORKSPACE": str(workspace),
               "GITHUB_OUTPUT": str(output), "NO_COLOR": "1",
               **{k: _EXPRESSION.sub(expression, str(v)) for k, v in (step.get("env") or {}).items()}}
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=workspace,
                              env=env, capture_output=True, text=True, timeout=1800)
        (workspace.parent / f"step-{number}.log").write_text(done.stdout + done.stderr)
        pairs = [line.split("=", 1) for line in output.read_text().splitlines() if "=" in line]
        if "id" in step:
            outputs[step["id"]] = dict(pairs)
        ran.append((name, done.returncode))
        failed = failed or done.returncode != 0
    return {"outputs": outputs, "ran": ran, "failed": failed}


def test_the_composite_action_runs_the_documented_drills_against_the_kind_cluster(kind, dirt_dist, tmp_path) -> None:
    # the action's checkout: dirt's source as released (its sdist); the job's checkout: the user's repository
    action_path = tmp_path / "action"
    with tarfile.open(dirt_dist["sdist"]) as sdist:
        sdist.extractall(tmp_path / "sdist", filter="data")
    (source,) = (tmp_path / "sdist").iterdir()
    source.rename(action_path)
    workspace = tmp_path / "job" / "workspace"
    for folder in ("scenarios", "playbooks"):
        shutil.copytree(action_path / folder, workspace / folder)
    (workspace / "dirt.yaml").write_text(_tested_block("dirt.yaml"))
    workflow = yaml.safe_load(_tested_block("workflow"))
    (step,) = [s for s in workflow["jobs"]["drills"]["steps"] if str(s.get("uses", "")).split("@")[0].endswith("/dirt")]
    python = tmp_path / "python"  # actions/setup-python: the job's own Python, first on PATH
    made = subprocess.run([sys.executable, "-m", "venv", str(python)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    artifacts = tmp_path / "artifacts"

    done = run_composite_action({k: str(v) for k, v in step["with"].items()}, action_path=action_path,
                                workspace=workspace, python=python / "bin", artifacts=artifacts)

    logs = "\n".join(p.read_text()[-3000:] for p in sorted((tmp_path / "job").glob("step-*.log")))
    assert not done["failed"] and all(code == 0 for _, code in done["ran"]), (done, logs)
    assert done["outputs"]["run"]["verdict"] == "passed" and done["outputs"]["run"]["rc"] == "0"
    # the installed dirt is the action's, not this checkout
    where = subprocess.run([str(python / "bin" / "python"), "-c", "import dirt; print(dirt.__file__)"],
                           capture_output=True, text=True, cwd=workspace).stdout
    assert str(python) in where, where
    runs = sorted(p for p in (workspace / "reports").iterdir() if p.is_dir())
    assert [report(r)["scenario"]["name"] for r in runs] == ["namespace-deletion", "control-plane-down"]
    assert all(report(r)["verdict"] == "passed" for r in runs)
    assert done["outputs"]["run"]["report"] == str(Path("reports") / runs[-1].name)
    kept = artifacts / step["with"]["artifact-name"]
    assert sorted(p.name for p in kept.iterdir() if p.is_dir()) == [r.name for r in runs]

    # bad input: exit status 2, verdict invalid, and the reports are still uploaded
    bad = run_composite_action({**step["with"], "scenarios": "scenarios/no-such-drill.yaml"},
                               action_path=action_path, workspace=workspace, python=python / "bin",
                               artifacts=tmp_path / "artifacts-bad")
    assert bad["outputs"]["run"]["verdict"] == "invalid" and bad["ran"][-1] == ("Fail when the drills did not pass", 2)
    assert ("Upload the reports", 0) in bad["ran"]


def test_a_drill_from_outside_the_repository_restores_its_app_into_a_recreated_cluster(kind, tmp_path) -> None:
    """An app with its own CRD, a StatefulSet and a Secret; the cluster is deleted, created again, and the app
    restored from a resources backup (CRDs first), then checked object by object."""
    project = tmp_path / "their-project"
    (project / "app").mkdir(parents=True)
    (project / "dirt.yaml").write_text(textwrap.dedent(f"""\
        default_target: ci
        targets:
          ci:
            provider: kind
            allow: [cluster]
            confirm: false
            settings: {{cluster: {CLUSTER}, image: dirt, config: kind.yaml, monitoring: true}}
        """))
    (project / "kind.yaml").write_text((REPO / "scenarios/apps/shop/kind/cluster.yaml").read_text())
    (project / "app" / "crd.yaml").write_text(textwrap.dedent("""\
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: ledgers.books.example.com}
        spec:
          group: books.example.com
          scope: Namespaced
          names: {plural: ledgers, singular: ledger, kind: Ledger}
          versions:
            - name: v1
              served: true
              storage: true
              schema:
                openAPIV3Schema:
                  type: object
                  properties:
                    spec: {type: object, properties: {currency: {type: string}, entries: {type: integer}}}
        """))
    (project / "app" / "app.yaml").write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Namespace
        metadata: {name: books}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: ledger-key, namespace: books}
        stringData: {key: not-a-real-key}
        ---
        apiVersion: books.example.com/v1
        kind: Ledger
        metadata: {name: main, namespace: books}
        spec: {currency: EUR, entries: 42}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: ledger, namespace: books}
        spec: {clusterIP: None, selector: {app: ledger}, ports: [{port: 8080}]}
        ---
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: ledger, namespace: books}
        spec:
          serviceName: ledger
          replicas: 2
          selector: {matchLabels: {app: ledger}}
          template:
            metadata: {labels: {app: ledger}}
            spec:
              terminationGracePeriodSeconds: 1
              containers:
                - name: ledger
                  image: dirt.local/busybox:latest
                  imagePullPolicy: IfNotPresent
                  env: [{name: KEY, valueFrom: {secretKeyRef: {name: ledger-key, key: key}}}]
                  command: [/bin/sh, -c, 'mkdir -p /srv && exec httpd -f -p 8080 -h /srv']
        """))
    (project / "lose-the-cluster.yaml").write_text(textwrap.dedent("""\
        apiVersion: dirt/v1
        kind: Scenario
        metadata: {name: lose-the-cluster, description: The cluster is deleted; the ledger comes back from backup.}
        setup:
          - step: redeploy
            path: app/crd.yaml
          - step: redeploy
            path: app/app.yaml
        steady_state:
          - check: pods.ready
            namespace: books
            selector: {app: ledger}
            minimum: 2
        backups:
          - backup: resources
            name: books
            namespaces: [books]
            cluster_kinds: [CustomResourceDefinition]
        inject:
          - fault: cluster.delete
        expect:
          alerts:
            - {name: KubeAPIDown, fires_within: 60s}
        recover:
          - step: cluster.create
          - step: backup.restore
            backup: books
          - step: rollout.wait
            namespace: books
        verify:
          - check: objects.match_backup
            backup: books
          - check: pods.ready
            namespace: books
            selector: {app: ledger}
            minimum: 2
          - check: exec
            command: kubectl -n books get ledger main -o jsonpath='{.spec.currency} {.spec.entries}'
            stdout_contains: EUR 42
        cleanup:
          - step: namespace.delete
            namespaces: [books]
        """))
    try:
        run = dirt("run", "lose-the-cluster.yaml", "--report-dir", str(tmp_path / "reports"), "--display", "plain",
                   cwd=project)
    finally:
        # Their target recreated the cluster and wrote its new port and CA into their project's kubeconfig, and
        # ran the monitoring with their rules: the tests after this one use the repository's target.
        kind.prepare()
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-3000:]
    (run_dir,) = [p for p in (tmp_path / "reports").iterdir() if p.is_dir()]
    data = report(run_dir)
    assert data["verdict"] == "passed"
    checked = next(s for s in data["steps"] if s["driver"] == "objects.match_backup")
    assert checked["status"] == "passed" and checked["data"]["objects_missing"] == 0, checked["data"]
    assert checked["data"]["objects_changed"] == 0
    assert checked["data"]["objects_expected"] >= 4  # the Secret, the Ledger, the Service, the StatefulSet
    assert data["faults"][0]["status"] == "recovered"



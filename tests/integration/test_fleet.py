"""The fleet for real: two sandboxes behind a real HAProxy, a shared Velero bucket, a fleet Prometheus.

The example fleet drills (``scenarios/fleet-*.yaml``) run as scenario items of the same session; here:
what ``dirt sandbox status`` shows of a fleet; the same cluster-loss drill against an entry point with
no health checks, which must *fail* its availability objective (a drill that can only pass proves
nothing); a fleet drill from a project outside this repository, with another app on other ports; and
``dirt sandbox down``, which must leave no process, mount, cgroup or port of the fleet behind.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.integration]

DIRT = [sys.executable, "-m", "dirt"]


def dirt(*args: str, cwd: Path = REPO, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "NO_COLOR": "1"})


def status() -> dict:
    done = dirt("sandbox", "status", "--target", "fleet", "--json", timeout=120)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def fleet() -> dict:
    """The repository's fleet, up (the scenario items of the session bring it up again after this module)."""
    up = dirt("sandbox", "up", "--target", "fleet", timeout=900)
    assert up.returncode == 0, up.stderr[-3000:]
    return status()


def report(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text())


def test_status_shows_the_fleet_its_members_and_its_entry_point(fleet) -> None:
    assert fleet["kind"] == "fleet" and fleet["exists"]
    assert set(fleet["members"]) == {"east", "west"}
    assert all(box["exists"] and box["real_nodes"]["nodes"] == ["real-0"] for box in fleet["members"].values())
    names = {c["name"] for c in fleet["components"]}
    assert {"entry/haproxy", "fleet-monitoring/prometheus", "store/object-store", "east/kubelet",
            "west/kube-apiserver", "west/velero"} <= names
    assert all(c["healthy"] for c in fleet["components"]), [c for c in fleet["components"] if not c["healthy"]]
    assert fleet["entry"]["settings"]["health_check"] is True
    # one bucket: every member's Velero points at the fleet's store, none runs its own
    stores = {box["velero"]["object_store_url"] for box in fleet["members"].values()}
    assert stores == {fleet["object_store_url"]}
    assert not any(c["name"].endswith("/object-store") and not c["name"].startswith("store/")
                   for c in fleet["components"])


def test_a_blind_entry_point_makes_the_same_drill_fail_on_availability(fleet, tmp_path) -> None:
    run = dirt("run", "scenarios/fleet-cluster-loss.yaml", "--target", "fleet-unchecked",
               "--report-dir", str(tmp_path))
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    data = report(run_dir)
    assert data["verdict"] == "failed"
    (probe,) = data["availability"]
    assert probe["passed"] is False and probe["ratio"] < 0.999, probe
    assert any("users at the entry point" in f for f in data["failures"]), data["failures"]
    # the fault is over (recovered or rolled back): the lost member is a cluster again, and serves
    after = status()
    assert after["members"]["west"]["exists"]
    assert all(c["healthy"] for c in after["members"]["west"]["components"])


def test_a_fleet_drill_outside_the_repository_with_its_own_app_and_ports(fleet, tmp_path) -> None:
    project = tmp_path / "their-fleet"
    (project / "apps").mkdir(parents=True)
    (project / "dirt.yaml").write_text(textwrap.dedent("""\
        default_target: shop
        targets:
          shop:
            provider: fleet
            settings:
              sandbox:
                name: fleet
                members: [east, west]
                app: {port: 19281, health: /ping}
        """))
    (project / "apps" / "hello.yaml").write_text(textwrap.dedent("""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: hello, namespace: hello}
        spec:
          replicas: 1
          strategy: {type: Recreate}
          selector: {matchLabels: {app: hello}}
          template:
            metadata: {labels: {app: hello}}
            spec:
              hostNetwork: true
              nodeSelector: {dirt.dev/node: real}
              tolerations: [{key: dirt.dev/real-node, operator: Exists, effect: NoSchedule}]
              terminationGracePeriodSeconds: 1
              containers:
                - name: hello
                  image: dirt.local/busybox:latest
                  imagePullPolicy: Never
                  env:
                    - {name: WHERE, valueFrom: {configMapKeyRef: {name: where, key: cluster}}}
                    - {name: PORT, valueFrom: {configMapKeyRef: {name: where, key: port}}}
                  command: [/bin/sh, -c, 'echo "hello from $WHERE" > /srv/index.html; echo pong > /srv/ping;
                            exec httpd -f -p "127.0.0.1:$PORT" -h /srv']
                  volumeMounts: [{name: srv, mountPath: /srv}]
              volumes: [{name: srv, emptyDir: {}}]
        """))
    (project / "lose-east.yaml").write_text(textwrap.dedent("""\
        apiVersion: dirt/v1
        kind: Scenario
        metadata: {name: lose-east, description: East is deleted; hello keeps answering from west.}
        setup:
          - step: exec
            command: |
              kubectl create namespace hello --dry-run=client -o yaml | kubectl apply -f -
              kubectl -n hello create configmap where --from-literal=cluster={{ member }} \\
                --from-literal=port={{ app_port }} --dry-run=client -o yaml | kubectl apply -f -
          - step: redeploy
            path: apps/hello.yaml
        steady_state:
          - check: promql
            query: min(haproxy_server_status{job="entry",state="UP"})
            equals: 1
            within: 60s
        inject:
          - fault: cluster.delete
            member: east
        expect:
          alerts:
            - {name: FleetMemberDown, labels: {member: east}, fires_within: 30s}
          availability:
            - {name: hello, http: "{{ entry_url }}", interval: 100ms, served_by: X-Served-By,
               min_success: 99%, max_outage: 1s}
        recover:
          - step: cluster.create
            member: east
          - step: exec
            member: east
            command: |
              kubectl create namespace hello
              kubectl -n hello create configmap where --from-literal=cluster=east --from-literal=port={{ app_port }}
          - step: redeploy
            member: east
            path: apps/hello.yaml
        verify:
          - check: http
            url: "{{ entry_url }}"
            body_contains: hello from east
            response_headers: {X-Served-By: east}
            interval: 200ms
            within: 60s
          # Both members stay in rotation for a while: the probe, which shares HAProxy's round robin with the
          # check above, then sees east answer too (the check alone may take east's only turn).
          - check: promql
            query: min(haproxy_server_status{job="entry",state="UP"})
            equals: 1
            for: 3s
            within: 60s
        cleanup:
          - step: namespace.delete
            namespaces: [hello]
        """))
    run = dirt("run", "lose-east.yaml", "--report-dir", str(tmp_path / "reports"), cwd=project)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    (run_dir,) = [p for p in (tmp_path / "reports").iterdir() if p.is_dir()]
    (probe,) = report(run_dir)["availability"]
    assert probe["served"].keys() == {"east", "west"}  # east served before and after; west throughout
    assert len(probe["served_spans"]["east"]) >= 2, probe["served_spans"]  # a gap while east was gone


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_down_leaves_no_process_mount_cgroup_or_port_of_the_fleet(fleet) -> None:
    before = status()
    pids = [c["pid"] for c in before["components"] if c["pid"]]
    root = Path(before["root"])
    ports = [int(before["entry_url"].rsplit(":", 1)[1].rstrip("/")), *before["app_ports"].values()]
    cgroups = [box["real_nodes"]["cgroup"] for box in before["members"].values()]
    down = dirt("sandbox", "down", "--target", "fleet", timeout=600)
    assert down.returncode == 0, down.stderr[-3000:]
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()
             and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    assert not alive, f"still running: {alive}"
    assert not root.exists()
    mounts = Path("/proc/mounts").read_text()
    assert str(root) not in mounts and "dirt-node-" not in " ".join(
        line for line in mounts.splitlines() if "fleet" in line)
    leftovers = [str(p) for group in cgroups for p in Path("/sys/fs/cgroup").glob(f"*{group}")]
    assert not leftovers, leftovers
    assert not [port for port in ports if _listening(port)]

"""Benchmark: real kind clusters made offline, next to the sandbox, in one run on this machine.

1. The node image (``dirt.sandbox.kind_image``): ``build_node_image()`` when its archive is cached (what
   every ``dirt kind up`` pays), and again with ``force=True`` (the archive made again from the cached Go
   builds, root filesystems and layers: what a changed recipe costs).  ``--cold`` also builds it from
   nothing in a child process, with empty Go, binary and root filesystem caches in a temp folder (many
   minutes on two cores: the Go builds).
2. Clusters: ``create_cluster()`` and ``delete_cluster()`` of a kind target with dirt's image and 0 and 1
   workers (1 and 2 nodes), cluster ``dirt-bench``; and, in the same run, the baseline: a warm
   ``dirt sandbox up`` of the repository's sandbox in a fresh ``DIRT_SANDBOX_HOME`` (after its binaries are
   built), so the table says what a kind cluster costs against the sandbox.
3. Drills: each example drill that runs on kind (control-plane-down, etcd-loss, namespace-deletion,
   node-loss, cluster-deletion) run by ``python -m dirt run`` as a user runs it, against the repository's
   ``kind`` target (four nodes, monitoring beside it; ``dirt kind up`` first) and against the sandbox:
   wall time, verdict and MTTR from each report.json; kind/sandbox ratios.

Each cluster and the sandbox are removed in a ``finally``; the Docker daemon is stopped if this run
started it.  A benchmark, not a test: a failed drill still exits 0 with its verdict in the table; a part
that could not be measured exits 1 after printing what was.

Run: .venv/bin/python bench/kind.py [--skip image,clusters,drills] [--cold] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DRILLS = ("control-plane-down", "etcd-loss", "namespace-deletion", "node-loss", "cluster-deletion")
START = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - START:6.0f}s] {message}", file=sys.stderr, flush=True)


def dirt(*args: str, env: dict[str, str], timeout: float = 1800) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "dirt", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**env, "NO_COLOR": "1"})
    return time.monotonic() - started, done


def image_figures(cold: bool) -> dict[str, Any]:
    from dirt.sandbox import kind_image

    quiet = lambda message: None  # noqa: E731
    figures: dict[str, Any] = {}
    kind_image.build_node_image(log=quiet)  # make sure it exists before timing the cached path
    started = time.monotonic()
    cached = kind_image.build_node_image(log=quiet)
    figures["cached_seconds"] = time.monotonic() - started
    started = time.monotonic()
    kind_image.build_node_image(log=quiet, force=True)
    figures["rebuild_seconds"] = time.monotonic() - started
    figures["archive_mb"] = cached.archive.stat().st_size / 1e6
    figures["cold_seconds"] = None
    if cold:
        with tempfile.TemporaryDirectory(prefix="dirt-bench-cold-") as scratch:
            env = {**os.environ, "XDG_CACHE_HOME": f"{scratch}/cache", "GOCACHE": f"{scratch}/go-build",
                   "GOMODCACHE": f"{scratch}/go-mod", "DIRT_SANDBOX_HOME": f"{scratch}/home"}
            env.pop("DIRT_BIN_CACHE", None)
            say("cold image build: every Go build and debootstrap from nothing (many minutes)")
            seconds, done = dirt("kind", "build-image", env=env, timeout=7200)
            figures["cold_seconds"] = seconds if done.returncode == 0 else None
            if done.returncode != 0:
                figures["cold_problem"] = (done.stderr or done.stdout).strip().splitlines()[-1:]
    return figures


def cluster_figures(env: dict[str, str]) -> dict[str, Any]:
    from dirt.config import TargetConfig
    from dirt.sandbox.cluster import sandbox_home
    from dirt.sandbox.docker import DockerEngine
    from dirt.targets.kind import KindTarget

    DockerEngine(sandbox_home() / "docker", log=say).ensure()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dirt-bench-kind-") as project:
        for workers in (0, 1):
            target = KindTarget("bench", TargetConfig(provider="kind", settings={
                "cluster": "dirt-bench", "image": "dirt", "workers": workers}), Path(project))
            try:
                if target.cluster_exists():
                    target.delete_cluster()
                started = time.monotonic()
                target.create_cluster()
                figures[f"create_{workers + 1}_node_seconds"] = time.monotonic() - started
                started = time.monotonic()
                target.delete_cluster()
                figures[f"delete_{workers + 1}_node_seconds"] = time.monotonic() - started
            finally:
                if target.cluster_exists():
                    target.delete_cluster()
    seconds, done = dirt("sandbox", "build", env=env)
    seconds, done = dirt("sandbox", "up", env=env, timeout=900)
    figures["sandbox_up_seconds"] = seconds if done.returncode == 0 else None
    return figures


def drill_figures(env: dict[str, str], report_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for drill in DRILLS:
        row: dict[str, Any] = {"drill": drill}
        for target in ("kind", "sandbox"):
            folder = report_dir / f"{drill}-{target}"
            seconds, done = dirt("run", f"scenarios/{drill}.yaml", "--target", target, "--report-dir", str(folder),
                                 "--display", "none", env=env)
            runs = [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
            data = json.loads((runs[0] / "report.json").read_text()) if runs else {}
            row[target] = {"seconds": seconds, "verdict": data.get("verdict", f"exit {done.returncode}"),
                           "mttr": (data.get("timings") or {}).get("mttr_seconds")}
            say(f"{drill} on {target}: {seconds:.0f}s, {row[target]['verdict']}")
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", default="", help="comma-separated: image, clusters, drills")
    parser.add_argument("--cold", action="store_true", help="also build the node image from empty caches")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    home = tempfile.mkdtemp(prefix="dirt-bench-home-")
    os.environ["DIRT_SANDBOX_HOME"] = home
    env = dict(os.environ)
    results: dict[str, Any] = {}
    problems = []
    try:
        if "image" not in skip:
            say("node image")
            results["image"] = image_figures(args.cold)
        if "clusters" not in skip:
            say("kind clusters of 1 and 2 nodes, and the sandbox")
            results["clusters"] = cluster_figures(env)
        if "drills" not in skip:
            seconds, done = dirt("kind", "up", "--target", "kind", env=env)
            results["kind_up_seconds"] = seconds
            if done.returncode != 0:
                problems.append(f"dirt kind up: {done.stderr.strip().splitlines()[-1:]}")
            else:
                with tempfile.TemporaryDirectory(prefix="dirt-bench-reports-") as reports:
                    results["drills"] = drill_figures(env, Path(reports))
    except Exception as exc:  # noqa: BLE001 - a benchmark reports what it could measure
        problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        dirt("kind", "down", "--target", "kind", env=env)
        dirt("sandbox", "down", env=env)
        subprocess.run(["rm", "-rf", home])
    if args.json:
        print(json.dumps({"results": results, "problems": problems}, indent=1))
        return 1 if problems else 0
    show(results)
    for problem in problems:
        print(f"NOT MEASURED: {problem}")
    return 1 if problems else 0


def show(results: dict[str, Any]) -> None:
    image = results.get("image")
    if image:
        print("kind node image                    seconds   ratio")
        print(f"  archive cached (dirt kind up)    {image['cached_seconds']:7.2f}")
        print(f"  rebuilt from cached parts        {image['rebuild_seconds']:7.1f}   "
              f"{image['rebuild_seconds'] / max(image['cached_seconds'], 1e-3):.0f}x the cached path "
              f"({image['archive_mb']:.0f} MB archive)")
        cold = image.get("cold_seconds")
        print(f"  cold (empty Go and Debian caches) {cold:6.0f}   {cold / image['rebuild_seconds']:.1f}x the rebuild"
              if cold else "  cold: not measured (--cold)")
    clusters = results.get("clusters")
    if clusters:
        base = clusters.get("sandbox_up_seconds")
        print("clusters                           seconds   vs sandbox up")
        for nodes in (1, 2):
            create = clusters[f"create_{nodes}_node_seconds"]
            ratio = f"{create / base:.2f}x" if base else "-"
            print(f"  kind create, {nodes} node(s)           {create:7.1f}   {ratio}  "
                  f"(delete {clusters[f'delete_{nodes}_node_seconds']:.1f}s)")
        print(f"  sandbox up (warm, fresh home)    {base:7.1f}   1.00x" if base else "  sandbox up: failed")
    drills = results.get("drills")
    if drills:
        print("drill                 kind s  verdict  MTTR    sandbox s  verdict  MTTR    kind/sandbox")
        for row in drills:
            k, s = row["kind"], row["sandbox"]
            mttr = lambda v: f"{v:5.1f}s" if v is not None else "   - "  # noqa: E731
            print(f"  {row['drill']:20} {k['seconds']:6.0f}  {k['verdict']:7}  {mttr(k['mttr'])}  "
                  f"{s['seconds']:8.0f}  {s['verdict']:7}  {mttr(s['mttr'])}  {k['seconds'] / s['seconds']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())

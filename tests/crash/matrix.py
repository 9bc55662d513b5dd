"""The crash matrix: example drills killed with a real SIGKILL right after chosen journal events,
then put back by ``dirt rollback`` from the journal alone, on the real sandbox.

For the CI drills (and, with ``--full``, the FULL drills) a reference run (not killed) lists the
journal events a run writes.  The crash points are chosen:

- the CI drills (``CI_DRILLS``): every transition of a fault's life (``fault.*``) and every phase
  boundary (``phase.start``, ``phase.end``);
- every other example drill: ``--sample`` events chosen by the printed ``--seed`` among those its
  scenario says every run reaches (its phase boundaries and its faults' injecting, injected and
  verified: ``predicted_points``), without a reference run;
- with ``--full``: every event of ``FULL_DRILLS``.

Each point: the cluster's fingerprint is taken (kube-system's UID, the shop's objects by digest,
the control plane and the real node's processes running, the nodes, the drill lock free); the
drill runs with ``DIRT_TEST_CRASH_AFTER`` set (``dirt.testing.crash``) and must die by SIGKILL
there; ``dirt rollback RUN --yes`` runs with nothing but the run folder; then the fingerprint is
taken again and must match, and a second rollback must find nothing to do.  After a point in
cleanup the shop is left out of the comparison (removing it is the drill's own doing) and put
back before the next point; after the drill's own recovery undid every fault, so is kube-system's
UID (a deleted cluster comes back as a new one, its app restored from a backup).

Prints the matrix (survived / total per drill, the slowest rollback) and exits 1 if any point
was not survived.  Run: ``make test-crash`` (``FULL=1`` for every event), or
``python -m tests.crash.matrix --drill etcd-loss --seed 7``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DIRT = [sys.executable, "-m", "dirt"]
SHOP = REPO / "scenarios" / "apps" / "shop" / "manifests"
#: Every fault transition and phase boundary of these, in CI.
CI_DRILLS = ("cluster-deletion", "api-down-then-etcd-lost", "namespace-restore-velero")
#: Every event of these, by hand (``--full``).
FULL_DRILLS = CI_DRILLS + ("etcd-loss", "real-node-loss")
#: Not sandbox drills (a fleet target) or not this harness's (the game-day export's kind).
SKIPPED = ("fleet-cluster-loss", "fleet-member-frozen")
BOUNDARIES = ("phase.start", "phase.end")
ROLLBACK_TIMEOUT = 600


@dataclass
class Point:
    drill: str
    spec: str
    survived: bool = False
    rollback_seconds: float | None = None
    problems: list[str] = field(default_factory=list)
    said: str = ""
    #: what ``dirt rollback`` told a person to do for a fault no revert undoes (the app's objects it
    #: left as the fault made them are then not a failure: a window with no safe automatic answer)
    by_hand: str = ""

    @property
    def mark(self) -> str:
        return "survived" if self.survived else "by hand " if self.by_hand else "FAILED  "


def dirt(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRT, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def journal(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines() if line.strip()]


def newest_run(reports: Path, before: set[Path]) -> Path | None:
    runs = [p.parent for p in reports.glob("*/journal.jsonl") if p.parent not in before]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def point_of(event: dict[str, Any], events: list[dict[str, Any]]) -> str:
    """The crash point (``dirt.testing.crash``) that names ``event`` among ``events``."""
    label = event.get("phase") or event.get("name")
    same = [e for e in events[: events.index(event) + 1]
            if e["event"] == event["event"] and (e.get("phase") or e.get("name")) == label]
    text = event["event"] + (f"={label}" if isinstance(label, str) and label else "")
    return text + (f"#{len(same)}" if len(same) > 1 else "")


def referenced(drill: str, full: bool) -> bool:
    """Whether ``drill``'s points come from a reference run (every event, or every fault transition and phase
    boundary) rather than from its scenario (``predicted_points``, sampled)."""
    return drill in CI_DRILLS or (full and drill in FULL_DRILLS)


def crash_points(drill: str, events: list[dict[str, Any]], *, full: bool) -> list[str]:
    """The points of a drill with a reference run, from the events that run journaled."""
    # run.start comes before the lock and anything else: a crash there leaves nothing, and is cheap to keep
    candidates = [e for e in events if e["event"] != "run.end"]
    if not (full and drill in FULL_DRILLS):
        candidates = [e for e in candidates if e["event"].startswith("fault.") or e["event"] in BOUNDARIES]
    return list(dict.fromkeys(point_of(e, events) for e in candidates))


def sampled_points(drill: str, sample: int, rng: random.Random) -> list[str]:
    """``sample`` of the points every run of ``drill`` reaches, chosen by ``rng``, in the order a run meets them."""
    predicted = predicted_points(drill)
    return sorted(rng.sample(predicted, min(sample, len(predicted))), key=predicted.index)


def predicted_points(drill: str) -> list[str]:
    """The crash points every passing run of ``drill`` reaches, read from its scenario without running it:
    the boundaries of its phases and the first three transitions of each fault's life (``fault.recovered``
    depends on what claims the recovery, so it is left to the drills that get a reference run)."""
    sys.path.insert(0, str(REPO))
    from dirt.scenario import load_scenario

    scenario = load_scenario(REPO / "scenarios" / f"{drill}.yaml")
    phases = ["preflight", "inject", "detect", "recover", "verify"] + (["cleanup"] if scenario.cleanup else [])
    events: list[dict[str, Any]] = [{"event": "run.start"}]
    for phase in phases:
        events.append({"event": "phase.start", "phase": phase})
        if phase == "inject":
            events += [{"event": event, "name": spec.name} for spec in scenario.inject
                       for event in ("fault.injecting", "fault.injected", "fault.verified")]
        events.append({"event": "phase.end", "phase": phase})
    for seq, event in enumerate(events, 1):  # as a journal numbers them: two faults of one name stay two events
        event["seq"] = seq
    return [point_of(e, events) for e in events]


# -- the fingerprint ---------------------------------------------------------------------------


class Cluster:
    """The sandbox target of the repository's dirt.yaml, as the drills see it."""

    def __init__(self) -> None:
        sys.path.insert(0, str(REPO))
        from dirt.config import load_config
        from dirt.targets.base import make_target

        loaded = load_config(REPO / "dirt.yaml")
        name, config = loaded.target("sandbox")
        self.target = make_target(name, config, loaded.root)

    def kube(self) -> Any:
        self.target.reset_kube()
        return self.target.kube()

    def fingerprint(self, *, with_shop: bool = True) -> dict[str, Any]:
        from dirt.drivers.resources import digest, object_key
        from dirt.engine.lock import LEASE_NAME, LEASE_NAMESPACE

        status = self.target.sandbox.status()
        kube = self.kube()
        lease = kube.find("coordination.k8s.io/v1", "Lease", LEASE_NAME, LEASE_NAMESPACE)
        found: dict[str, Any] = {
            "kube-system uid": kube.get("v1", "Namespace", "kube-system")["metadata"]["uid"],
            "processes not running": sorted(c["name"] for c in status["components"] if not c.get("healthy")),
            "nodes": sorted(n["metadata"]["name"] for n in kube.list("v1", "Node")),
            "drill lock held by": ((lease or {}).get("spec") or {}).get("holderIdentity"),
        }
        if with_shop:
            shop = {}
            for api_version, kind in (("v1", "ConfigMap"), ("v1", "Service"), ("v1", "ServiceAccount"),
                                      ("apps/v1", "Deployment"), ("policy/v1", "PodDisruptionBudget")):
                for obj in kube.list(api_version, kind, "shop"):
                    obj.setdefault("apiVersion", api_version)
                    if obj["metadata"]["name"] == "kube-root-ca.crt" or kind == "ServiceAccount" \
                            and obj["metadata"]["name"] == "default":
                        continue
                    shop[object_key(obj)] = digest(obj)
            found["shop objects"] = shop
        return found

    def settle(self, timeout: float = 180) -> None:
        """Every process of the sandbox healthy and the shop's Deployments available (a rollback may
        bring the control plane back a moment before the controllers have caught up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status = self.target.sandbox.status()
                kube = self.kube()
                deployments = kube.list("apps/v1", "Deployment", "shop")
                if all(c.get("healthy") for c in status["components"]) and all(
                        (d.get("status") or {}).get("availableReplicas") == d["spec"].get("replicas", 1)
                        for d in deployments):
                    return
            except Exception:  # noqa: BLE001 - the API may be coming back
                pass
            time.sleep(1)


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    for key, value in before.items():
        if key == "shop objects" and key in after:
            changed = sorted(k for k in value.keys() | after[key].keys() if value.get(k) != after[key].get(k))
            if changed:
                out.append(f"shop objects differ: {', '.join(changed[:5])}" + (" ..." if len(changed) > 5 else ""))
        elif after.get(key) != value:
            out.append(f"{key}: {value!r} before, {after.get(key)!r} after")
    return out


# -- one point ---------------------------------------------------------------------------------


def deploy_shop() -> None:
    proc = subprocess.run(["kubectl", "apply", "--server-side", "--force-conflicts", "--field-manager=dirt", "-R",
                           "-f", str(SHOP)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **CLUSTER_ENV})
    if proc.returncode != 0:
        raise SystemExit(f"cannot deploy the shop: {proc.stderr.strip()}")


def crash_once(cluster: Cluster, drill: str, spec: str, reports: Path) -> Point:
    point = Point(drill, spec)
    deploy_shop()
    from dirt.recovery.kube import remove_strays  # what the drills' own redeploy does after its apply

    kube = cluster.kube()
    remove_strays(kube, [("Deployment", "shop", d["metadata"]["name"])
                         for d in kube.list("apps/v1", "Deployment", "shop")])
    cluster.settle()
    before = cluster.fingerprint()
    seen = {p.parent for p in reports.glob("*/journal.jsonl")}
    ran = dirt("run", f"scenarios/{drill}.yaml", "--report-dir", str(reports), "--display", "none", "--yes",
               env={"DIRT_TESTING": "1", "DIRT_TEST_CRASH_AFTER": spec})
    run_dir = newest_run(reports, seen)
    if run_dir is None:
        point.problems.append(f"no run folder (exit {ran.returncode}: {ran.stderr.strip()[-200:]})")
        return point
    events = journal(run_dir)
    if ran.returncode != -signal.SIGKILL:
        ended = next((e for e in reversed(events) if e["event"] == "run.end"), {})
        why = "; ".join(ended.get("failures") or []) or ran.stderr.strip()[-200:]
        point.problems.append(f"the drill ended before the point, exit {ran.returncode}: {why[:300]}")
    in_cleanup = any(e["event"] == "phase.start" and e.get("phase") == "cleanup" for e in events)
    # Once the drill's own recovery undid every fault, the cluster is what that recovery made: a deleted
    # cluster is a new one (its kube-system too), with the app restored from a backup; rollback leaves it.
    injected = {e["index"] for e in events if e["event"] == "fault.injecting"}
    recovered = injected and injected <= {e["index"] for e in events if e["event"] == "fault.recovered"}
    started = time.monotonic()
    rolled = dirt("rollback", str(run_dir), "--yes", timeout=ROLLBACK_TIMEOUT)
    point.rollback_seconds = time.monotonic() - started
    point.said = (rolled.stdout.strip().splitlines() or [""])[-1][:120]
    if rolled.returncode != 0:
        said = (rolled.stderr or rolled.stdout).strip()[-300:]
        point.problems.append(f"dirt rollback exited {rolled.returncode}: {said}")
    cluster.settle()
    after = cluster.fingerprint(with_shop=not in_cleanup)
    if in_cleanup:
        before.pop("shop objects", None)
    if recovered:
        before.pop("kube-system uid", None)
    told = [line for line in rolled.stdout.splitlines() if line.startswith("left in effect:") and "by hand:" in line]
    changed = differences(before, after)
    if told and changed and all(c.startswith("shop objects differ") for c in changed) and not point.problems:
        faults = ", ".join(line.split(": ", 1)[1].split(" (", 1)[0] for line in told)
        what = told[0].split("by hand: ", 1)[1]
        point.by_hand = f"{'; '.join(changed)}; dirt rollback left {faults} to a person: {what}"
    else:
        point.problems += changed
    again = dirt("rollback", str(run_dir), "--yes", timeout=ROLLBACK_TIMEOUT)
    if again.returncode != 0 or not again.stdout.startswith("nothing to roll back"):
        point.problems.append(f"a second rollback did something: {again.stdout.strip()[:200]}")
    point.survived = not point.problems and not point.by_hand
    if point.problems:
        point.by_hand = ""
    return point


# -- the matrix --------------------------------------------------------------------------------

CLUSTER_ENV: dict[str, str] = {}


def example_drills() -> list[str]:
    return sorted(p.stem for p in (REPO / "scenarios").glob("*.yaml") if p.stem not in SKIPPED)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--full", action="store_true", help=f"every event of {', '.join(FULL_DRILLS)}")
    parser.add_argument("--seed", type=int, default=None, help="seed of the sampled points (printed; default: random)")
    parser.add_argument("--sample", type=int, default=2, help="points sampled from each other drill (default 2)")
    parser.add_argument("--drill", action="append", help="only these drills (repeatable)")
    parser.add_argument("--point", action="append",
                        help="only these crash points, as printed (e.g. fault.verified=delete the shop namespace)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    rng = random.Random(seed)
    drills = args.drill or (list(FULL_DRILLS) if args.full else example_drills())
    print(f"crash matrix: seed {seed} (--seed {seed} repeats the sampled points); drills: {', '.join(drills)}",
          flush=True)
    up = dirt("sandbox", "up")
    if up.returncode != 0:
        print(up.stdout + up.stderr)
        return 2
    cluster = Cluster()
    CLUSTER_ENV.update(cluster.target.command_env())
    results: list[Point] = []
    with tempfile.TemporaryDirectory(prefix="dirt-crash-") as tmp:
        reports = Path(tmp) / "reports"
        for drill in drills:
            if referenced(drill, args.full):
                deploy_shop()
                cluster.settle()
                seen = {p.parent for p in reports.glob("*/journal.jsonl")}
                reference = dirt("run", f"scenarios/{drill}.yaml", "--report-dir", str(reports), "--display",
                                 "none", "--yes", env={"DIRT_TESTING": "1"})
                run_dir = newest_run(reports, seen)
                if reference.returncode != 0 or run_dir is None:
                    print(f"{drill}: the reference run did not pass (exit {reference.returncode}): "
                          f"{reference.stdout.strip()[-300:]}", flush=True)
                    results.append(Point(drill, "(reference run)", problems=["the reference run did not pass"]))
                    continue
                points = crash_points(drill, journal(run_dir), full=args.full)
            else:  # no reference run: the points its scenario says every run reaches
                points = sampled_points(drill, args.sample, rng)
            if args.point:
                points = [p for p in points if p in args.point] or list(args.point)
            print(f"{drill}: {len(points)} crash point(s)", flush=True)
            for spec in points:
                point = crash_once(cluster, drill, spec, reports)
                results.append(point)
                seconds = f"{point.rollback_seconds:6.1f}s" if point.rollback_seconds is not None else "     -"
                said = "" if point.survived else f": {point.by_hand or '; '.join(point.problems)}"
                print(f"  {point.mark} {seconds}  {spec}{said}", flush=True)
    print()
    print(f"{'drill':28} {'survived':>9} {'by hand':>8} {'points':>7} {'rollback max':>13} {'rollback median':>16}")
    for drill in drills:
        mine = [p for p in results if p.drill == drill]
        times = sorted(p.rollback_seconds for p in mine if p.rollback_seconds is not None)
        median = times[len(times) // 2] if times else None
        print(f"{drill:28} {sum(p.survived for p in mine):>9} {sum(bool(p.by_hand) for p in mine):>8} {len(mine):>7} "
              f"{(f'{times[-1]:.1f}s' if times else '-'):>13} {(f'{median:.1f}s' if median is not None else '-'):>16}")
    failed = [p for p in results if not p.survived and not p.by_hand]
    manual = sum(bool(p.by_hand) for p in results)
    print(f"\ncrash matrix: {sum(p.survived for p in results)}/{len(results)} crash points survived"
          + (f", {manual} left to a person with what to do said by dirt rollback" if manual else "")
          + f", {len(failed)} failed (seed {seed})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

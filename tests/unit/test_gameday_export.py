"""`dirt gameday export`: a game day handed to Kubernetes, GitHub Actions or systemd.

The game days here are built from the repository's own drills (copied into a temporary
project), so what is checked is what a user gets: the CronJob's fields, the files in its
ConfigMap and where they land, the refusal of drills that would destroy the runner's own
cluster, UTC crons worked out by hand, and OnCalendar values.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import pytest
import yaml

from dirt.app import gameday_export as ge
from dirt.cli import exit_code
from dirt.config import TargetConfig
from dirt.gameday.model import GameDay, GameDayDocument, Schedule
from tests.conftest import REPO

NOW = datetime(2026, 1, 15, tzinfo=timezone.utc)
CRASH = """\
apiVersion: dirt/v1
kind: Scenario
metadata: {name: crash}
inject:
  - fault: pods.delete
    namespace: shop
    selector: app=frontend
"""
SCHEDULE = {"cron": "0 10 * * 2", "timezone": "Europe/Berlin", "jitter": "10m"}
#: Where the job reaches the drilled cluster's monitoring: drills that watch alerts need it.
WATCHED = {"prometheus_url": "http://prometheus.monitoring.svc:9090"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the repository's drills, playbooks and sample app: a project of the user's."""
    for folder in ("scenarios", "playbooks"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    (tmp_path / "dirt.yaml").write_text("default_target: sandbox\ntargets:\n  sandbox: {provider: sandbox}\n")
    (tmp_path / "gamedays").mkdir()
    return tmp_path


def make_gameday(project: Path, drills: list[str], **extra: object) -> GameDay:
    """A game day file in gamedays/, and its model (as the loader would build it)."""
    doc = {"apiVersion": "dirt/v1", "kind": "GameDay", "metadata": {"name": "weekly-dirt"},
           "drills": [{"scenario": f"../scenarios/{d}.yaml"} for d in drills], "schedule": SCHEDULE, **extra}
    path = project / "gamedays" / "weekly.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    document = GameDayDocument.model_validate(doc)
    paths = {entry.id: (path.parent / entry.scenario).resolve() for entry in document.drills}
    return GameDay(path=path, document=document, drill_paths=paths)


def docs(text: str) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(text)}


def test_cronjob_runs_the_game_day_on_its_schedule_in_its_time_zone_once_at_a_time(project: Path) -> None:
    day = make_gameday(project, ["namespace-deletion"])
    out = docs(ge.cronjob(day, image="registry.example/dirt:1", namespace="drills", **WATCHED))
    assert list(out) == ["ConfigMap", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                         "CronJob"]
    spec = out["CronJob"]["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == ("0 10 * * 2", "Europe/Berlin",
                                                                                "Forbid")
    assert spec["startingDeadlineSeconds"] == 1800, "the schedule's starting_deadline (30 minutes unless set)"
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 5)
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    drills = ge.plan_drills(day)
    assert job["activeDeadlineSeconds"] == int(ge.drill_deadline(drills[0].scenario) + ge.DEADLINE_MARGIN + 600)
    pod = job["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["dirt", "gameday", "run", "/plan/gamedays/weekly.yaml", "--trigger", "schedule"]
    assert container["image"] == "registry.example/dirt:1"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["limits"] and container["resources"]["requests"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == out["ServiceAccount"]["metadata"]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["reports"] == {"name": "reports", "emptyDir": {}}
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/plan", "/reports", "/tmp"}
    assert all(d["metadata"].get("namespace") in ("drills", "kube-system", None) for d in out.values())


def test_reports_go_to_the_named_volume_claim(project: Path) -> None:
    day = make_gameday(project, ["namespace-deletion"])
    out = docs(ge.cronjob(day, image="i", reports_pvc="dirt-reports", **WATCHED))
    pod = out["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {"name": "reports", "persistentVolumeClaim": {"claimName": "dirt-reports"}} in pod["volumes"]


def test_configmap_holds_every_file_the_plan_needs_under_flat_keys_mounted_in_the_same_layout(project: Path) -> None:
    day = make_gameday(project, ["namespace-deletion"])
    out = docs(ge.cronjob(day, image="i", **WATCHED))
    data = out["ConfigMap"]["data"]
    assert all(re.fullmatch(r"[-._a-zA-Z0-9]+", key) for key in data), "ConfigMap keys may not hold '/'"
    volume = next(v for v in out["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "plan")
    layout = {item["path"]: data[item["key"]] for item in volume["configMap"]["items"]}
    assert set(layout) >= {"gamedays/weekly.yaml", "scenarios/namespace-deletion.yaml",
                           "playbooks/namespace-deletion.md", "dirt.yaml", "in-cluster.kubeconfig",
                           "scenarios/apps/shop/manifests/20-frontend.yaml"}
    assert layout["scenarios/namespace-deletion.yaml"] == (project / "scenarios/namespace-deletion.yaml").read_text()
    mounted = yaml.safe_load(layout["gamedays/weekly.yaml"])
    drill = PurePosixPath("gamedays") / mounted["drills"][0]["scenario"]
    assert str(PurePosixPath(*[p for p in drill.parts if p != ".."][1:])) == "scenarios/namespace-deletion.yaml"
    config = yaml.safe_load(layout["dirt.yaml"])
    target = config["targets"][config["default_target"]]
    assert target["provider"] == "kubeconfig" and target["confirm"] is False
    assert target["allow"] == ["namespace"]
    assert target["settings"]["kubeconfig"] == "/plan/in-cluster.kubeconfig"
    assert config["reports_dir"] == "/reports"
    kubeconfig = yaml.safe_load(layout["in-cluster.kubeconfig"])
    assert kubeconfig["users"][0]["user"] == {"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}


def test_manifests_named_up_the_tree_from_the_scenario_are_mounted_too(tmp_path: Path) -> None:
    """The starter's drill redeploys '../apps/hello/manifests': a folder above the scenario's, not a hidden one."""
    from dirt.app.init import init_project
    from dirt.gameday import load_gameday

    init_project(tmp_path)
    day = load_gameday(tmp_path / "gamedays" / "example.yaml", known_targets=["sandbox"])
    out = docs(ge.cronjob(day, image="i", **WATCHED))
    volume = next(v for v in out["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "plan")
    paths = {item["path"] for item in volume["configMap"]["items"]}
    assert {"apps/hello/manifests/00-namespace.yaml", "apps/hello/manifests/10-config.yaml",
            "apps/hello/manifests/20-web.yaml", "scenarios/first-drill.yaml", "playbooks/first-drill.md",
            "gamedays/example.yaml", "dirt.yaml"} <= paths


def test_plan_files_outside_the_project_are_mounted_with_the_game_day_path_rewritten(project: Path,
                                                                                        tmp_path_factory) -> None:
    elsewhere = tmp_path_factory.mktemp("drills")
    (elsewhere / "crash.yaml").write_text(CRASH)
    day = make_gameday(project, ["namespace-deletion"])
    doc = day.document.model_dump(by_alias=True, exclude_defaults=True, mode="json")
    doc["drills"].append({"scenario": str(elsewhere / "crash.yaml")})
    day.path.write_text(yaml.safe_dump(doc))
    document = GameDayDocument.model_validate(doc)
    day = GameDay(path=day.path, document=document,
                  drill_paths={e.id: (day.path.parent / e.scenario).resolve() for e in document.drills})
    drills = ge.plan_drills(day)
    plan = ge.plan_files(day, drills)
    rewritten = yaml.safe_load(ge._rewritten_gameday(day, plan, drills))
    mounted_gameday = PurePosixPath("/plan") / plan.gameday
    for raw, drill in zip(rewritten["drills"], drills, strict=True):
        assert not PurePosixPath(raw["scenario"]).is_absolute()
        in_pod = Path(str(mounted_gameday.parent / raw["scenario"]))
        assert plan.root / Path(*in_pod.resolve().parts[2:]) == drill.scenario.path


def test_drills_that_destroy_the_cluster_are_refused_naming_each_drill_and_fault(project: Path) -> None:
    day = make_gameday(project, ["namespace-deletion", "control-plane-down", "etcd-loss"])
    with pytest.raises(ge.ExportRefused) as refused:
        ge.cronjob(day, image="i")
    message = str(refused.value)
    assert "control-plane-down" in message and "control_plane.stop [control-plane]" in message
    assert "etcd-loss" in message and "[etcd]" in message
    assert "namespace.delete" not in message
    assert "--management-cluster" in message
    assert refused.value.exit_code == 2


def test_the_cli_refuses_the_destructive_plan_with_exit_2(project: Path, capsys) -> None:
    day = make_gameday(project, ["cluster-deletion"])
    code = exit_code(["--config", str(project / "dirt.yaml"), "gameday", "export", str(day.path), "--cronjob",
                      "--image", "i"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cluster-deletion" in err and "[cluster]" in err and "Traceback" not in err


def test_a_management_cluster_runs_destructive_drills_through_the_named_kubeconfig_secret(project: Path) -> None:
    day = make_gameday(project, ["control-plane-down"])
    with pytest.raises(ge.ExportError, match="--kubeconfig-secret"):
        ge.cronjob(day, image="i", management_cluster=True, **WATCHED)
    out = docs(ge.cronjob(day, image="i", management_cluster=True, kubeconfig_secret="drilled-kubeconfig",
                          **WATCHED))
    assert "ClusterRole" not in out, "in the management cluster the job needs no rights"
    pod = out["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert {"name": "kubeconfig", "secret": {"secretName": "drilled-kubeconfig",
                                             "items": [{"key": "kubeconfig", "path": "kubeconfig"}]}} in pod["volumes"]
    config = yaml.safe_load(out["ConfigMap"]["data"]["dirt.yaml"])
    target = next(iter(config["targets"].values()))
    assert target["settings"]["kubeconfig"] == "/kubeconfig/kubeconfig"
    assert "control-plane" in target["allow"]
    assert "in-cluster.kubeconfig" not in out["ConfigMap"]["data"]


def test_rbac_follows_the_drills_faults_and_steps(project: Path) -> None:
    (project / "scenarios/crash.yaml").write_text(CRASH)
    day = make_gameday(project, ["crash"])
    rules, _ = ge.rbac_rules(ge.plan_drills(day))
    granted = {(g, r): set(rule["verbs"]) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert "delete" in granted[("", "pods")], "pods.delete deletes pods"
    assert ("*", "*") not in granted, "nothing in this drill writes arbitrary objects"
    assert "delete" not in granted.get(("", "namespaces"), set())
    assert "create" not in granted[("apps", "deployments")]
    (project / "scenarios/crash.yaml").write_text(CRASH + "verify:\n  - check: controllers.responsive\n")
    rules, _ = ge.rbac_rules(ge.plan_drills(make_gameday(project, ["crash"])))
    granted = {(g, r): set(rule["verbs"]) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert {"create", "delete"} <= granted[("apps", "deployments")], "the canary Deployment is made and deleted"


def test_secrets_are_named_never_embedded(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROM_TOKEN", "s3cr3t-prometheus-token")
    monkeypatch.setenv("SLACK_URL", "https://hooks.example/T000/B000/s3cr3t-webhook")
    day = make_gameday(project, ["namespace-deletion"],
                       notify=[{"url_env": "SLACK_URL", "format": "slack"}])
    target = TargetConfig.model_validate({"provider": "kubeconfig", "prometheus": {
        "url": "http://prometheus.monitoring:9090", "bearer_token_env": "PROM_TOKEN"}, "settings": {}})
    text = ge.cronjob(day, image="i", target_config=target, env_secret="dirt-env")
    assert "s3cr3t" not in text
    assert "PROM_TOKEN" in text and "SLACK_URL" in text
    pod = docs(text)["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "dirt-env"}}]
    config = yaml.safe_load(docs(text)["ConfigMap"]["data"]["dirt.yaml"])
    assert next(iter(config["targets"].values()))["prometheus"]["bearer_token_env"] == "PROM_TOKEN"


def test_a_game_day_without_a_schedule_cannot_be_exported(project: Path) -> None:
    day = make_gameday(project, ["namespace-deletion"], schedule=None)
    for export in (lambda: ge.cronjob(day, image="i"), lambda: ge.github_actions(day), lambda: ge.systemd(day)):
        with pytest.raises(ge.ExportError, match="no schedule"):
            export()


@pytest.mark.parametrize(("cron", "zone", "expected"), [
    # Berlin: CET is UTC+1 (10:00 -> 09:00), CEST UTC+2 (10:00 -> 08:00)
    ("0 10 * * 2", "Europe/Berlin", {"0 9 * * 2": (60,), "0 8 * * 2": (120,)}),
    # New York: 01:30 EST (UTC-5) is 06:30 UTC, EDT (UTC-4) 05:30 UTC, same weekdays
    ("30 1 * * 1-5", "America/New_York", {"30 6 * * 1-5": (-300,), "30 5 * * 1-5": (-240,)}),
    # New York 21:00 is the next day in UTC: 02:00 (EST) or 01:00 (EDT), Tuesday..Saturday
    ("0 21 * * 1-5", "America/New_York", {"0 2 * * 2-6": (-300,), "0 1 * * 2-6": (-240,)}),
    # Tokyo (UTC+9, no DST): Monday 08:00 is Sunday 23:00 UTC
    ("0 8 * * 1", "Asia/Tokyo", {"0 23 * * 0": (540,)}),
    # Kolkata (UTC+5:30): 09:15 is 03:45 UTC
    ("15 9 * * *", "Asia/Kolkata", {"45 3 * * *": (330,)}),
    # every hour on the hour is every hour in UTC too, whatever the season
    ("0 * * * *", "Europe/Berlin", {"0 * * * *": (60, 120)}),
    # Berlin 00:30 on the 15th is 23:30 (CET) or 22:30 (CEST) UTC on the 14th
    ("30 0 15 * *", "Europe/Berlin", {"30 23 14 * *": (60,), "30 22 14 * *": (120,)}),
    ("0 10 * * 2", "UTC", {"0 10 * * 2": (0,)}),
])
def test_github_cron_is_the_game_days_cron_in_utc_for_each_offset(cron: str, zone: str, expected: dict) -> None:
    got = ge.utc_crons(Schedule(cron=cron, timezone=zone), now=NOW)
    assert {c.cron: c.offsets for c in got} == expected


def test_a_cron_whose_utc_day_cannot_be_said_in_cron_is_refused() -> None:
    with pytest.raises(ge.ExportError, match="another day"):  # Sydney 09:00 on the 1st is the previous month in UTC
        ge.utc_crons(Schedule(cron="0 9 1 * *", timezone="Australia/Sydney"), now=NOW)
    with pytest.raises(ge.ExportError, match="five fields"):
        ge.utc_crons(Schedule(cron="0 9 * *", timezone="UTC"))


def test_workflow_runs_on_schedule_and_by_hand_with_a_guard_for_daylight_saving(project: Path) -> None:
    day = make_gameday(project, ["namespace-deletion"])
    workflow = yaml.safe_load(ge.github_actions(day, now=NOW))
    assert workflow["on"]["schedule"] == [{"cron": "0 9 * * 2"}, {"cron": "0 8 * * 2"}]
    assert "workflow_dispatch" in workflow["on"]
    steps = workflow["jobs"]["gameday"]["steps"]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    assert uses == ["actions/checkout", "actions/setup-python", "", "", "helm/kind-action", "",
                    "actions/upload-artifact"]
    guard = steps[3]
    assert guard["id"] == "guard" and "'0 9 * * 2') want='+0100'" in guard["run"]
    assert "'0 8 * * 2') want='+0200'" in guard["run"] and guard["env"]["ZONE"] == "Europe/Berlin"
    assert "dirt gameday due gamedays/weekly.yaml" in guard["run"], "before the kind cluster: is it a real slot?"
    run = next(s for s in steps if s.get("name") == "Run the game day")
    assert "dirt gameday run gamedays/weekly.yaml" in run["run"] and run["run"].startswith("set -euo pipefail")
    assert '--started-at "$STARTED_AT"' in run["run"], "the slot the guard found, however long the setup took"
    assert all("if" not in s for s in steps[:4]), "checkout, python, dirt and the guard always run"
    assert all(s["if"].endswith("steps.guard.outputs.run == 'true'") for s in steps[4:])
    assert steps[-1]["if"].startswith("always()")


def test_workflow_without_daylight_saving_has_one_cron_and_no_offset_check(project: Path) -> None:
    day = make_gameday(project, ["namespace-deletion"], schedule={"cron": "0 8 * * 1", "timezone": "Asia/Tokyo"})
    workflow = yaml.safe_load(ge.github_actions(day, now=NOW))
    assert workflow["on"]["schedule"] == [{"cron": "0 23 * * 0"}]
    guard = workflow["jobs"]["gameday"]["steps"][3]
    assert "date +%z" not in guard["run"] and "dirt gameday due" in guard["run"]


# -- schedules the scheduler cannot say: 2#1, L, W ----------------------------------------------

QUARTERLY = {"cron": "0 10 * 1,4,7,10 2#1", "timezone": "Europe/Berlin", "jitter": "10m"}


def test_a_first_tuesday_cronjob_fires_every_tuesday_and_says_the_job_lets_only_the_first_through(
        project: Path) -> None:
    day = make_gameday(project, ["namespace-deletion"], schedule=QUARTERLY)
    text = ge.cronjob(day, image="i", **WATCHED)
    spec = docs(text)["CronJob"]["spec"]
    assert (spec["schedule"], spec["timeZone"]) == ("0 10 * 1,4,7,10 2", "Europe/Berlin")
    assert "2#1, which this scheduler's cron cannot say" in text and "'not a scheduled slot'" in text


def test_a_first_tuesday_workflow_fires_every_tuesday_in_utc_and_its_guard_asks_dirt(project: Path) -> None:
    day = make_gameday(project, ["namespace-deletion"], schedule=QUARTERLY)
    text = ge.github_actions(day, now=NOW)
    workflow = yaml.safe_load(text)
    assert workflow["on"]["schedule"] == [{"cron": "0 9 * 1,4,7,10 2"}, {"cron": "0 8 * 1,4,7,10 2"}]
    assert "dirt gameday due" in workflow["jobs"]["gameday"]["steps"][3]["run"]
    assert "2#1, which this scheduler's cron cannot say" in text


@pytest.mark.parametrize(("cron", "kubernetes", "systemd"), [
    # the first Tuesday of each quarter: every Tuesday of those months for Kubernetes; exact for systemd
    ("0 10 * 1,4,7,10 2#1", "0 10 * 1,4,7,10 2", ["Tue *-01,04,07,10-01..07 10:00:00 Europe/Berlin"]),
    # the last day of the month: 28-31; systemd counts back from the end
    ("30 6 L * *", "30 6 28-31 * *", ["*-*~01 06:30:00 Europe/Berlin"]),
    # the last Friday: every Friday; systemd's last seven days that are a Friday
    ("0 18 * * L5", "0 18 * * 5", ["Fri *-*~07/1 18:00:00 Europe/Berlin"]),
    # the weekday nearest the 15th lies within two days of it: a superset for both
    ("0 9 15W * *", "0 9 13-17 * *", ["Mon,Tue,Wed,Thu,Fri *-*-13..17 09:00:00 Europe/Berlin"]),
    # the first day, or the last: two values for systemd
    ("0 0 1,L * *", "0 0 1,28-31 * *", ["*-*-01 00:00:00 Europe/Berlin", "*-*~01 00:00:00 Europe/Berlin"]),
    # plain cron is copied as written
    ("*/15 9-17 * * 1-5", "*/15 9-17 * * 1-5", ["Mon,Tue,Wed,Thu,Fri *-*-* 09..17:00,15,30,45:00 Europe/Berlin"]),
])
def test_each_scheduler_gets_a_cron_it_can_read(cron: str, kubernetes: str, systemd: list[str]) -> None:
    schedule = Schedule(cron=cron, timezone="Europe/Berlin")
    assert ge.kubernetes_cron(schedule) == kubernetes
    assert ge.on_calendar(cron, "Europe/Berlin") == systemd


def test_the_job_has_to_reach_monitoring_when_its_drills_watch_alerts(project: Path, capsys) -> None:
    day = make_gameday(project, ["namespace-deletion"])
    with pytest.raises(ge.ExportError) as refused:
        ge.cronjob(day, image="i")
    message = str(refused.value)
    assert "nothing to watch alerts on" in message and "expects ShopWorkloadsMissing" in message
    assert "--prometheus" in message and "--alertmanager" in message
    assert exit_code(["--config", str(project / "dirt.yaml"), "gameday", "export", str(day.path), "--cronjob",
                      "--image", "i"]) == 2
    assert "nothing to watch alerts on" in capsys.readouterr().err
    for enough in ({"prometheus_url": "http://p:9090"}, {"alertmanager_url": "http://a:9093"}):
        assert "kind: CronJob" in ge.cronjob(day, image="i", **enough)


def test_the_job_can_run_on_a_chosen_node_in_its_network_through_a_kubeconfig_secret(project: Path) -> None:
    """The sandbox's way: the real node is tainted, its API server and monitoring listen on 127.0.0.1."""
    day = make_gameday(project, ["namespace-deletion"])
    placement = ge.Placement(node_selector={"dirt.dev/node": "real"}, host_network=True,
                             tolerations=({"key": "dirt.dev/real-node", "operator": "Equal", "value": "true",
                                           "effect": "NoSchedule"},))
    out = docs(ge.cronjob(day, image="i", kubeconfig_secret="sandbox-kubeconfig", reports_host_path="/srv/dirt",
                          placement=placement, **WATCHED))
    assert "ClusterRole" not in out, "the kubeconfig's identity holds the rights"
    pod = out["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["nodeSelector"] == {"dirt.dev/node": "real"} and pod["tolerations"] == list(placement.tolerations)
    assert pod["automountServiceAccountToken"] is False
    assert {"name": "reports", "hostPath": {"path": "/srv/dirt", "type": "DirectoryOrCreate"}} in pod["volumes"]
    config = yaml.safe_load(out["ConfigMap"]["data"]["dirt.yaml"])
    assert next(iter(config["targets"].values()))["settings"]["kubeconfig"] == "/kubeconfig/kubeconfig"
    with pytest.raises(ge.ExportRefused):  # still the drilled cluster: its destroyers are refused
        ge.cronjob(make_gameday(project, ["control-plane-down"]), image="i", kubeconfig_secret="k", **WATCHED)
    with pytest.raises(ge.ExportError, match="absolute"):
        ge.cronjob(day, image="i", reports_host_path="reports", **WATCHED)


@pytest.mark.parametrize(("given", "expected"), [
    ("dirt.dev/real-node=true:NoSchedule",
     {"key": "dirt.dev/real-node", "operator": "Equal", "value": "true", "effect": "NoSchedule"}),
    ("dedicated", {"key": "dedicated", "operator": "Exists"}),
    ("gpu:NoExecute", {"key": "gpu", "operator": "Exists", "effect": "NoExecute"}),
])
def test_tolerations_are_read_as_kubectl_writes_taints(given: str, expected: dict) -> None:
    from dirt.cli.gameday import _toleration

    assert _toleration(given) == expected


def test_cli_options_of_the_cronjob_reach_the_pod(project: Path, tmp_path: Path, capsys) -> None:
    day = make_gameday(project, ["namespace-deletion"])
    out = tmp_path / "cronjob.yaml"
    assert exit_code(["--config", str(project / "dirt.yaml"), "gameday", "export", str(day.path), "--cronjob",
                      "--image", "dirt.local/dirt:0.2.0", "--host-network", "--node-selector", "dirt.dev/node=real",
                      "--toleration", "dirt.dev/real-node=true:NoSchedule", "--kubeconfig-secret", "k",
                      "--reports-host-path", "/srv/dirt", "--prometheus", "http://127.0.0.1:9090",
                      "-o", str(out)]) == 0
    pod = docs(out.read_text())["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["hostNetwork"] and pod["nodeSelector"] == {"dirt.dev/node": "real"} and pod["tolerations"]
    assert exit_code(["--config", str(project / "dirt.yaml"), "gameday", "export", str(day.path), "--cronjob",
                      "--image", "i", "--toleration", "bad key!"]) == 2
    assert "KEY[=VALUE][:EFFECT]" in capsys.readouterr().err


@pytest.mark.parametrize(("cron", "zone", "expected"), [
    ("0 10 * * 2", "Europe/Berlin", ["Tue *-*-* 10:00:00 Europe/Berlin"]),
    ("*/15 9-17 * * 1-5", "UTC", ["Mon,Tue,Wed,Thu,Fri *-*-* 09..17:00,15,30,45:00 UTC"]),
    ("30 2 1,15 * *", "America/New_York", ["*-*-01,15 02:30:00 America/New_York"]),
    ("5 4 * 6 0", "UTC", ["Sun *-06-* 04:05:00 UTC"]),
    # cron runs when either day field matches; systemd's fields must all match: two timers
    ("0 0 1 * 1", "UTC", ["*-*-01 00:00:00 UTC", "Mon *-*-* 00:00:00 UTC"]),
])
def test_systemd_on_calendar_for_crons(cron: str, zone: str, expected: list[str]) -> None:
    assert ge.on_calendar(cron, zone) == expected


def test_systemd_units_run_the_game_day_once_with_jitter_and_catch_up(project: Path) -> None:
    day = make_gameday(project, ["namespace-deletion"])
    units = ge.systemd(day, executable="/opt/dirt/bin/dirt")
    service, timer = units["dirt-gameday-weekly-dirt.service"], units["dirt-gameday-weekly-dirt.timer"]
    assert "Type=oneshot" in service.splitlines()
    assert f"ExecStart=/opt/dirt/bin/dirt gameday run {day.path} --trigger schedule" in service.splitlines()
    lines = timer.splitlines()
    assert "OnCalendar=Tue *-*-* 10:00:00 Europe/Berlin" in lines
    assert "Persistent=true" in lines
    assert not any(line.startswith("RandomizedDelaySec") for line in lines), "the run waits its own jitter"


def test_cli_writes_systemd_units_into_a_folder(project: Path, tmp_path: Path) -> None:
    day = make_gameday(project, ["namespace-deletion"])
    out = tmp_path / "units"
    assert exit_code(["--config", str(project / "dirt.yaml"), "gameday", "export", str(day.path), "--systemd",
                      "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dirt-gameday-weekly-dirt.service",
                                                     "dirt-gameday-weekly-dirt.timer"]


def test_cli_needs_a_scheduler_and_an_image(project: Path, capsys) -> None:
    day = make_gameday(project, ["namespace-deletion"])
    base = ["--config", str(project / "dirt.yaml"), "gameday", "export", str(day.path)]
    assert exit_code(base) == 2
    assert exit_code([*base, "--cronjob"]) == 2
    assert "--image" in capsys.readouterr().err
    assert exit_code([*base, "--systemd", "--image", "x"]) == 2


def test_blackout_now_says_which_blackout_holds(project: Path) -> None:
    pytest.importorskip("dirt.gameday.schedule")
    day = make_gameday(project, ["namespace-deletion"], schedule={
        **SCHEDULE, "blackouts": [{"name": "weekends", "weekly": {"days": ["sat", "sun"]}}]})
    saturday = datetime(2026, 1, 17, 12, tzinfo=timezone.utc)
    tuesday = datetime(2026, 1, 20, 9, tzinfo=timezone.utc)
    assert ge.blackout_now(day, saturday).name == "weekends"
    assert ge.blackout_now(day, tuesday) is None


# -- action.yml -----------------------------------------------------------------------------


def test_the_composite_action_uses_every_input_and_strict_bash() -> None:
    action = yaml.safe_load((REPO / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    text = yaml.safe_dump(steps)
    for name in action["inputs"]:
        assert f"inputs.{name}" in text, f"input {name!r} is never used"
    shell_steps = [s for s in steps if "run" in s]
    assert shell_steps
    for step in shell_steps:
        assert step["shell"] == "bash"
        assert step["run"].startswith("set -euo pipefail\n"), step.get("name")
    for output in action["outputs"].values():
        step_id = re.search(r"steps\.(\w+)\.outputs\.(\w+)", output["value"])
        assert step_id and any(s.get("id") == step_id.group(1) and f"{step_id.group(2)}=" in s["run"]
                               for s in shell_steps)
    uses = {s["uses"].split("@")[0] for s in steps if "uses" in s}
    assert uses == {"actions/setup-python", "actions/upload-artifact"}
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"

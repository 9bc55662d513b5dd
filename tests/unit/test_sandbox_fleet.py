"""The fleet dirt makes on this machine, without starting it: its settings, what its Prometheus scrapes,
its ports and folders, the CLI's refusals, and the process helpers freezing a cluster relies on.  The fleet
brought up for real and drilled is in tests/integration/test_fleet.py."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from dirt.config import TargetConfig
from dirt.sandbox import process
from dirt.sandbox.fleet import FLEET_RULES, Fleet
from dirt.targets.fleet import FleetSandboxSettings, FleetTarget


def fleet_target(tmp_path: Path, **sandbox: object) -> FleetTarget:
    config = TargetConfig(provider="fleet", settings={"sandbox": {"name": "shop", "members": ["a", "b", "c"],
                                                                  **sandbox}})
    return FleetTarget("shop", config, tmp_path)


def test_a_fleet_is_its_members_each_a_sandbox_with_its_own_port_and_one_shared_bucket(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRT_SANDBOX_HOME", str(tmp_path / "home"))
    target = fleet_target(tmp_path)
    fleet = target.fleet
    assert target.members() == ["a", "b", "c"]
    assert [box.name for box in fleet.members.values()] == ["shop-a", "shop-b", "shop-c"]
    assert all(box.root.parent == tmp_path / "home" / "shop" / "members" for box in fleet.members.values())
    assert [fleet.member_port(m) for m in "abc"] == [18181, 18182, 18183]
    b = target.member_target("b")
    assert b.variables()["app_port"] == 18182 and b.variables()["member"] == "b"
    assert b.sandbox is fleet.member("b") and b.is_sandbox
    # each member's Velero uses the fleet's bucket and runs no store of its own
    assert all(box.velero_server.processes == ("velero",) for box in fleet.members.values())
    assert target.variables()["entry_url"] == "http://127.0.0.1:18180/"
    assert not (tmp_path / "home").exists()  # asking made nothing (`dirt plan` touches nothing)


def test_the_fleet_prometheus_scrapes_the_entry_and_federates_each_member_under_its_name(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRT_SANDBOX_HOME", str(tmp_path / "home"))
    fleet = fleet_target(tmp_path).fleet
    fleet.root.mkdir(parents=True)  # ports are kept once the fleet exists
    config = fleet.monitoring.config([FLEET_RULES])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["entry"]["static_configs"] == [{"targets": [f"127.0.0.1:{fleet.ports.entry_metrics}"]}]
    federate = jobs["federate"]
    assert federate["metrics_path"] == "/federate" and federate["honor_labels"] is True
    assert [c["labels"]["member"] for c in federate["static_configs"]] == ["a", "b", "c"]
    assert federate["static_configs"][1]["targets"] == [f"127.0.0.1:{fleet.member('b').ports.prometheus}"]
    assert any("ALERTS" in m for m in federate["params"]["match[]"])
    assert config["global"]["scrape_interval"] == "1s" and jobs["entry"]["scrape_timeout"] == "800ms"
    every = [fleet.ports.entry, fleet.ports.entry_metrics, fleet.ports.prometheus, fleet.ports.alertmanager,
             fleet.ports.object_store, *(p for box in fleet.members.values() for p in vars(box.ports).values() if p)]
    assert len(every) == len(set(every)), "two parts of the fleet share a port"


def test_status_of_a_fleet_never_up_says_so_without_making_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRT_SANDBOX_HOME", str(tmp_path / "home"))
    status = fleet_target(tmp_path).fleet.status()
    assert status["kind"] == "fleet" and status["exists"] is False and status["entry_url"] is None
    assert set(status["members"]) == {"a", "b", "c"}
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(("settings", "said"), [
    ({"members": ["a"]}, "at least 2"),
    ({"members": ["a", "a"]}, "member names must differ"),
    ({"members": ["East", "b"]}, "short lowercase words"),
    ({"entry": {"port": 18182}}, "is one of the members' ports"),
])
def test_fleet_settings_refuse_what_cannot_work(settings, said) -> None:
    with pytest.raises(ValidationError, match=said):
        FleetSandboxSettings.model_validate(settings)


def test_a_fleet_must_be_made_here_or_of_targets_not_both(tmp_path) -> None:
    with pytest.raises(Exception, match="exactly one of 'members'"):
        FleetTarget("f", TargetConfig(provider="fleet", settings={
            "members": ["x", "y"], "entry": {"url": "http://127.0.0.1:1/"}, "sandbox": {}}), tmp_path)


def test_fleet_member_logs_are_named_member_slash_process(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRT_SANDBOX_HOME", str(tmp_path / "home"))
    fleet: Fleet = fleet_target(tmp_path).fleet
    assert fleet.log_path("b/kube-apiserver") == fleet.member("b").log_path("kube-apiserver")
    assert fleet.log_path("haproxy") == fleet.root / "entry" / "haproxy.log"
    with pytest.raises(Exception, match="no process 'nope'.*members: a, b, c"):
        fleet.log_path("nope")


def test_a_stopped_process_is_seen_stopped_and_continues_when_told(tmp_path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = process.start_time(child.pid)
        assert started is not None and not process.stopped(child.pid)
        assert process.send_signal(child.pid, signal.SIGSTOP)
        for _ in range(100):
            if process.stopped(child.pid):
                break
            import time

            time.sleep(0.01)
        assert process.stopped(child.pid)
        assert process.send_signal(child.pid, signal.SIGCONT)
        assert process.start_time(child.pid) == started  # the same process, not a later one with its PID
    finally:
        child.kill()
        child.wait()
    assert not process.send_signal(child.pid, signal.SIGCONT)  # gone

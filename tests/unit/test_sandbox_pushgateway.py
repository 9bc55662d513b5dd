"""The sandbox's Pushgateway: scraped by its Prometheus (with the pushers' own labels) only when it runs one."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from dirt.sandbox.monitoring import Ports, prometheus_config

PORTS = Ports(**{name: 21000 + i for i, name in enumerate(Ports.names())})


def config(tmp_path: Path, *, with_pushgateway: bool, scrape_interval: float = 1.0) -> dict:
    return prometheus_config(ports=PORTS, pki=tmp_path / "pki", rule_files=[], scrape_interval=scrape_interval,
                             evaluation_interval=1.0, with_ksm=True, with_pushgateway=with_pushgateway)


def jobs(cfg: dict) -> dict[str, dict]:
    return {job["job_name"]: job for job in cfg["scrape_configs"]}


def test_prometheus_scrapes_no_pushgateway_unless_the_sandbox_runs_one(tmp_path) -> None:
    without = jobs(config(tmp_path, with_pushgateway=False))
    assert "pushgateway" not in without
    assert not any(job.get("honor_labels") for job in without.values())


def test_the_pushgateway_is_scraped_with_honor_labels_at_the_sandbox_interval(tmp_path) -> None:
    cfg = config(tmp_path, with_pushgateway=True, scrape_interval=2.0)
    job = jobs(cfg)["pushgateway"]
    assert job["honor_labels"] is True
    assert job["static_configs"] == [{"targets": [f"127.0.0.1:{PORTS.pushgateway}"]}]
    assert job["scrape_interval"] == cfg["global"]["scrape_interval"] == "2s"
    assert set(jobs(cfg)) - {"pushgateway"} == set(jobs(config(tmp_path, with_pushgateway=False)))


def test_promtool_accepts_the_configuration_with_the_pushgateway(tmp_path) -> None:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: `make deps` installs the Debian package prometheus"
    pki = tmp_path / "pki"
    pki.mkdir()
    for name in ("admin.crt", "admin.key", "ca.crt"):
        (pki / name).write_text("")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config(tmp_path, with_pushgateway=True)))
    proc = subprocess.run([tool, "check", "config", "--syntax-only", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_sandbox_lists_the_pushgateway_among_its_monitors_only_when_it_runs_one(tmp_path) -> None:
    from dirt.sandbox.cluster import MONITORS, Sandbox

    assert Sandbox("plain", home=tmp_path).monitors == MONITORS
    assert "pushgateway" in Sandbox("pushing", pushgateway=True, home=tmp_path).monitors
    assert Sandbox("plain", home=tmp_path).status()["pushgateway_url"] is None


def test_a_pushgateway_started_by_another_configuration_stays_one_of_the_monitors(tmp_path) -> None:
    """The state says it runs: `dirt sandbox down --name X` (built-in settings) must still see it, and stop it."""
    from dirt.sandbox.cluster import Sandbox

    box = Sandbox("started", home=tmp_path)
    box.root.mkdir(parents=True)
    box.state_file.write_text(json.dumps({"pushgateway": True}))
    assert "pushgateway" in box.monitors
    assert box.ports.pushgateway  # allocated, as by `up`
    assert box.status()["pushgateway_url"] == f"http://127.0.0.1:{box.ports.pushgateway}"


def test_the_sandbox_setting_is_off_by_default_and_on_in_the_repository_config() -> None:
    from dirt.targets.sandbox import SandboxSettings

    assert SandboxSettings().pushgateway is False
    repo = Path(__file__).resolve().parents[2]
    settings = yaml.safe_load((repo / "dirt.yaml").read_text())["targets"]["sandbox"]["settings"]
    assert SandboxSettings(**settings).pushgateway is True

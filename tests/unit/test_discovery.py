"""Finding scenario files: decided by parsing, never by a regex; nothing skipped silently.

A drill that silently drops out of ``dirt validate DIR`` or of pytest collection is a
drill CI stops running.  Every odd-but-valid spelling of a scenario is found, every
file that looks like a broken one is an error, and every skipped file is counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dirt.core import safefile
from dirt.scenario import classify, discover
from tests.conftest import DIRT, basic_scenario

BODY = textwrap.dedent(basic_scenario())


def _variants() -> dict[str, bytes]:
    plain = BODY.encode()
    flow = json.dumps({"apiVersion": "dirt/v1", "kind": "Scenario", "metadata": {"name": "flow"},
                       "inject": [{"fault": "fake.fault"}]})
    return {
        "comment-after-kind.yaml": plain.replace(b"kind: Scenario", b"kind: Scenario   # a drill"),
        "bom.yaml": b"\xef\xbb\xbf" + plain,
        "flow.yaml": flow.encode(),
        "quoted.yml": plain.replace(b"kind: Scenario", b'kind: "Scenario"'),
        "UPPER.YAML": plain,
        "kind-first.Yml": b"kind: Scenario\n" + plain.replace(b"kind: Scenario\n", b""),
    }


@pytest.mark.parametrize("name", list(_variants()))
def test_every_spelling_of_a_scenario_is_found(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(_variants()[name])
    assert classify(path)[0] == "scenario"
    assert discover([tmp_path]).files == [path]


def test_broken_scenarios_are_loaded_so_their_errors_show(tmp_path: Path) -> None:
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text(BODY.replace("kind: Scenario", "kind: Scenaro"))
    other_dirt_kind = tmp_path / "unknown-kind.yaml"
    other_dirt_kind.write_text(BODY.replace("kind: Scenario", "kind: Drill"))
    unreadable = tmp_path / "locked.yaml"
    unreadable.write_text(BODY)
    unreadable.chmod(0)
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    not_yaml = tmp_path / "broken-syntax.yaml"
    not_yaml.write_text(BODY + "  - : : [\n")
    verdicts = {p.name: classify(p) for p in (misspelt, other_dirt_kind, unreadable, fifo, not_yaml)}
    if os.geteuid() == 0:  # root reads anything: the permission case cannot happen
        verdicts.pop("locked.yaml")
    assert {name: v[0] for name, v in verdicts.items()} == dict.fromkeys(verdicts, "broken")
    assert "FIFO" in verdicts["pipe.yaml"][1]


def test_other_yaml_is_skipped_and_counted_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(BODY)
    (tmp_path / "deploy.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "chart.yaml").write_text("replicas: {{ .Values.replicas }}\n  bad: [\n")
    found = discover([tmp_path])
    assert [p.name for p in found.files] == ["s.yaml"]
    reasons = {p.name: why for p, why in found.skipped}
    assert reasons == {"chart.yaml": reasons["chart.yaml"], "deploy.yaml": "kind Deployment",
                       "list.yaml": "not a YAML mapping"}
    assert reasons["chart.yaml"].startswith("not valid YAML")


def test_validate_counts_valid_invalid_and_skipped_and_lists_skipped_with_v(project) -> None:
    project.scenario("good", basic_scenario())
    (project.root / "bad.yaml").write_text(BODY.replace("kind: Scenario", "kind: Scenaro"))
    (project.root / "manifest.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    proc = subprocess.run([*DIRT, "validate", "-v", "."], cwd=project.root, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "bad.yaml:2:7: kind: must be 'Scenario'" in proc.stderr
    assert "1 valid, 1 invalid, " in proc.stderr
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("skipped")]
    assert any("manifest.yaml" in line and "kind ConfigMap" in line for line in skipped), proc.stdout
    n_skipped = int(proc.stderr.split(" invalid, ")[1].split()[0])
    assert n_skipped == len(skipped) >= 1


def test_special_files_are_refused_before_they_are_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    for path, kind in ((fifo, "FIFO"), (zero, "character device")):
        with pytest.raises(safefile.UnreadableFile) as info:
            safefile.read_text(path)  # would block (FIFO) or fill memory (/dev/zero) if opened
        assert kind in info.value.message
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (safefile.MAX_DOCUMENT_BYTES + 1))
    with pytest.raises(safefile.UnreadableFile, match="too large"):
        safefile.read_text(big)


def test_validate_on_a_fifo_and_dev_zero_exits_2_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    proc = subprocess.run([*DIRT, "validate", str(tmp_path / "pipe.yaml"), str(tmp_path / "zero.yaml")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "pipe.yaml:1:1: not a regular file (a FIFO" in proc.stderr
    assert "zero.yaml:1:1: not a regular file (a character device" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_pytest_collection_counts_skipped_yaml_and_errors_on_broken(project) -> None:
    root = project.root
    (root / "conftest.py").write_text("")
    (root / "good.YAML").write_text(BODY)
    (root / "other.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    (root / "typo.yaml").write_text(BODY.replace("kind: Scenario", "kind: Scenaro"))
    env = {**os.environ, "DIRT_TESTING": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", str(root)],
                          cwd=root, capture_output=True, text=True, timeout=120, env=env)
    out = proc.stdout + proc.stderr
    assert "good.YAML::fake-drill" in out
    assert "typo.yaml" in out and "kind: must be 'Scenario'" in out
    assert "dirt: 2 YAML file(s) skipped as not scenarios" in out  # other.yaml and dirt.yaml
    assert proc.returncode != 0  # a broken scenario is a collection error, not a silent skip

"""Seeded fuzzing of the two loaders people feed by hand: scenarios and dirt.yaml.

Each case is a real file (an example drill, the project's dirt.yaml, the test
configuration) mutated a few times: lines dropped, repeated or swapped, indents
broken, hostile tokens spliced in (aliases, merge keys, templates, tags, .inf/.nan,
huge numbers, deep brackets, control bytes, a byte-order mark, bad UTF-8), text
truncated.  Whatever comes out, the loader must answer with its own located error
(``path:line:col: ...``) or a loaded document: never another exception, and never
a hang (a 2-second watchdog per case fails the test with the case's seed, so a
hang is reproducible: it is a bound on runaway input, not a speed measurement).

The seed is fixed, so the run is the same every time; ``DIRT_FUZZ_SEED`` and
``DIRT_FUZZ_CASES`` explore further.
"""

from __future__ import annotations

import os
import random
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from dirt.core.errors import ConfigError, ScenarioError
from tests.conftest import FAKE_CONFIG, PLAYBOOK, REPO

SEED = int(os.environ.get("DIRT_FUZZ_SEED", "20261126"))
CASES = int(os.environ.get("DIRT_FUZZ_CASES", "600"))
LOCATED = re.compile(r"^.+?:\d+:\d+: ")

HOSTILE = [
    "&a", "*a", "*undefined", "<<: 5", "<<: [1, 2]", "<<: *a", "{{", "}}", "{{ }}", "{{ x | upper }}",
    "{{ ''.__class__ }}", "{% if x %}", ".inf", "-.inf", ".nan", "99999999h", "0s", "-5s", "1e999",
    "9" * 60, "!!python/object:os.system", "!!binary zz", "!!timestamp 2021-13-45", "? [a]", ": :", "- [",
    "[" * 80, "{" * 80, "\t", "\x00", "\x07", "\u2028", "\ufeff", "%YAML 1.1", "---", "...", "'", '"',
    "kind: Scenaro", "apiVersion: dirt/v9", "playbook: ../../../../etc/passwd", "poll_interval: 0s",
    "interval: 1ms", "within: .nan", "count: -1", "url: http://[::1", "provider: nope", "settings: 5",
    "targets: []", "default_target: ~", "ca_file: /dev/zero", "token_file: /nonexistent", "🙂", "null",
]


def _mutate(text: str, rng: random.Random) -> bytes:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 4)):
        if not lines:
            lines = [""]
        i = rng.randrange(len(lines))
        op = rng.randrange(8)
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 2:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 3:
            lines[i] = " " * rng.randint(0, 7) + lines[i].lstrip()
        elif op == 4:
            pos = rng.randint(0, len(lines[i]))
            lines[i] = lines[i][:pos] + rng.choice(HOSTILE) + lines[i][pos:]
        elif op == 5:
            key, sep, _ = lines[i].partition(":")
            lines[i] = f"{key}{sep or ':'} {rng.choice(HOSTILE)}"
        elif op == 6:
            lines.insert(i, " " * rng.choice((0, 2, 4)) + rng.choice(HOSTILE))
        else:
            lines = lines[: i + 1]
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    roll = rng.random()
    if roll < 0.05:
        data = b"\xef\xbb\xbf" + data
    elif roll < 0.10:
        pos = rng.randint(0, len(data))
        data = data[:pos] + bytes([rng.choice((0xff, 0xc3, 0x80, 0xfe))]) + data[pos:]
    elif roll < 0.13:
        data = data[: rng.randint(0, len(data))]
    return data


class _Hang(Exception):
    pass


def _within_2s(call: Callable[[], object]) -> object:
    def alarm(signum: int, frame: object) -> None:
        raise _Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    try:
        return call()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _check_located(message: str, case: str) -> None:
    lines = [line for line in message.split("\n") if line.strip()]
    assert lines, f"{case}: an error without a message"
    for line in lines:
        assert LOCATED.match(line), f"{case}: error line without path:line:col: {line!r}"


def _scenario_seeds() -> list[tuple[str, str]]:
    seeds = [(p.name, p.read_text(encoding="utf-8")) for p in sorted((REPO / "scenarios").glob("*.yaml"))]
    assert len(seeds) >= 5
    return seeds


def test_mutated_scenarios_get_located_errors_never_tracebacks_or_hangs(tmp_path: Path) -> None:
    from dirt.scenario import LoadOptions, load_scenario

    (tmp_path / "dirt.yaml").write_text(FAKE_CONFIG)
    (tmp_path / "playbooks").mkdir()
    for book in (REPO / "playbooks").glob("*.md"):
        (tmp_path / "playbooks" / book.name).write_text(book.read_text(encoding="utf-8"))
    (tmp_path / "playbooks" / "fake.md").write_text(PLAYBOOK)
    rng = random.Random(SEED)
    seeds = _scenario_seeds()
    for name, text in seeds:  # warm up: the first load imports extension modules (chaosk8s) a drill names
        (tmp_path / name).write_text(text)
        try:
            load_scenario(tmp_path / name, LoadOptions(known_targets=["fake", "sandbox"]))
        except ScenarioError:
            pass
    outcomes = {"loaded": 0, "rejected": 0}
    for n in range(CASES):
        name, text = seeds[n % len(seeds)]
        path = tmp_path / f"case-{n}.yaml"
        path.write_bytes(_mutate(text, rng))
        case = f"seed {SEED} case {n} (from {name})"
        try:
            _within_2s(lambda: load_scenario(path, LoadOptions(known_targets=["fake", "sandbox"])))
            outcomes["loaded"] += 1
        except ScenarioError as exc:
            _check_located(exc.show(), case)
            outcomes["rejected"] += 1
        except _Hang:
            pytest.fail(f"{case}: no answer within 2 s")
        path.unlink()
    assert outcomes["rejected"] > CASES // 2, outcomes  # the mutations really do break files


def test_mutated_dirt_yaml_files_get_located_errors_never_tracebacks_or_hangs(tmp_path: Path) -> None:
    from dirt.config import load_config

    rng = random.Random(SEED + 1)
    seeds = [("dirt.yaml", (REPO / "dirt.yaml").read_text(encoding="utf-8")), ("fake", FAKE_CONFIG)]
    outcomes = {"loaded": 0, "rejected": 0}
    for n in range(CASES):
        name, text = seeds[n % len(seeds)]
        folder = tmp_path / f"case-{n}"
        folder.mkdir()
        (folder / "dirt.yaml").write_bytes(_mutate(text, rng))
        case = f"seed {SEED + 1} case {n} (from {name})"
        try:
            _within_2s(lambda: load_config(folder / "dirt.yaml"))
            outcomes["loaded"] += 1
        except ConfigError as exc:
            _check_located(str(exc), case)
            outcomes["rejected"] += 1
        except _Hang:
            pytest.fail(f"{case}: no answer within 2 s")
    assert outcomes["rejected"] > CASES // 3, outcomes
    assert CASES * 2 >= 1000 or "DIRT_FUZZ_CASES" in os.environ  # 1,200 files by default

"""The run-history store on a real PostgreSQL: the same tests as SQLite (tests/unit/test_history.py),
against a server this module starts (Debian's ``postgresql``: ``initdb`` in a temporary folder,
listening on 127.0.0.1 only, password authentication) and stops by its PID at the end."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dirt.app.history import Recording, open_history
from dirt.core.errors import HistoryError
from tests.unit.test_history import *  # noqa: F403 - the shared store tests run here too
from tests.unit.test_history import report

pytestmark = [pytest.mark.integration]

PASSWORD = "drill-" + uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Server:
    port: int
    password: str

    def url(self, database: str, *, password: bool = True) -> str:
        secret = f":{self.password}" if password else ""
        return f"postgresql://dirt{secret}@127.0.0.1:{self.port}/{database}"


def _bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    assert found, f"{name} is missing: `make deps` installs the Debian package postgresql"
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[Server]:
    base = Path(tempfile.mkdtemp(prefix="dirt-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the server runs as nobody, in a folder nobody owns
        nobody = pwd.getpwnam("nobody")
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
        prefix = ["runuser", "-u", "nobody", "--"]
    (base / "pw").write_text(PASSWORD)
    os.chmod(base / "pw", 0o644)
    data, port = base / "data", _free_port()
    subprocess.run([*prefix, _bin("initdb"), "-D", str(data), "-U", "dirt", "--auth=scram-sha-256",
                    f"--pwfile={base / 'pw'}", "-E", "UTF8"], check=True, capture_output=True, timeout=120)
    subprocess.run([*prefix, _bin("pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-t", "60",
                    "-o", f"-k {base} -h 127.0.0.1 -p {port}", "start"], check=True, capture_output=True,
                   timeout=120)
    pid = int((data / "postmaster.pid").read_text().split()[0])
    try:
        yield Server(port, PASSWORD)
    finally:
        os.kill(pid, signal.SIGINT)  # "fast" shutdown
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.1)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def history_url(postgres: Server) -> str:
    """A fresh database on the module's server for each test (overrides the SQLite fixture)."""
    import psycopg

    name = "history_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres.url(name)


def test_the_password_comes_from_the_variable_dirt_yaml_names(postgres: Server, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    recording = Recording(url=postgres.url("postgres", password=False), password_env="DIRT_TEST_PG_PASSWORD")
    monkeypatch.delenv("DIRT_TEST_PG_PASSWORD", raising=False)
    with pytest.raises(HistoryError, match="DIRT_TEST_PG_PASSWORD .* is not set"):
        open_history(recording, tmp_path)
    monkeypatch.setenv("DIRT_TEST_PG_PASSWORD", "wrong")
    with pytest.raises(HistoryError) as wrong:
        open_history(recording, tmp_path)
    assert "password authentication failed" in str(wrong.value) and "wrong" not in str(wrong.value)
    monkeypatch.setenv("DIRT_TEST_PG_PASSWORD", postgres.password)
    with open_history(recording, tmp_path) as store:
        store.record_run(report("etcd-loss-passed"))
        assert [r.scenario for r in store.runs()] == ["etcd-loss"]
    assert not list(tmp_path.glob("*.sqlite"))  # nothing fell back to SQLite


def test_a_server_that_is_down_is_one_history_error(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match=r"history store postgresql\+psycopg://dirt:\*\*\*@127.0.0.1"):
        open_history(Recording(url=f"postgresql://dirt:{PASSWORD}@127.0.0.1:{_free_port()}/x"), tmp_path)

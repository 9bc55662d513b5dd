"""The Docker engine kind clusters run on: used when one answers, else started by dirt and stopped by its PID.

Machines without an init system (CI containers, this project's own CI) have Debian's ``docker.io``
installed but no ``dockerd`` running.  ``DockerEngine.ensure()`` asks ``docker info``; when nothing
answers it starts ``dockerd`` itself with a daemon configuration of dirt's own (never
``/etc/docker/daemon.json``) and records the PID, so ``stop()`` stops only a daemon dirt started, by
that PID.  A daemon someone else runs is used as it is and never stopped.

dirt's daemon configuration keeps every container address out of the private ranges (10/8,
172.16/12, 192.168/16) that the machine's own networks may use: the default bridge and the address
pools come from 198.18.0.0/16, reserved for network tests (RFC 2544).  kind clusters made by dirt put
their pods and Services in 198.19.0.0/16 (``dirt.sandbox.kind_image.POD_SUBNET``).

One machine-specific workaround is applied only where it is needed, and said in the log: when the
capability bounding set lacks ``CAP_SYS_RESOURCE`` (some VMs), runc refuses every privileged container
("unable to apply caps: operation not permitted"), and kind nodes are privileged containers.  dirt then
makes a small runc wrapper that removes that one capability from each container's spec (``create``,
``run``) and from each ``exec --process`` spec, and makes it the daemon's default runtime.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from dirt.clients.commands import run
from dirt.core.errors import BinaryError, CommandError, TargetError
from dirt.sandbox import binaries, process

#: The default bridge and the pools of every network docker makes (kind's own among them).
BRIDGE_IP = "198.18.0.1/24"
ADDRESS_POOL = "198.18.0.0/16"
#: CAP_SYS_RESOURCE's bit in /proc/self/status's CapBnd.
CAP_SYS_RESOURCE = 24
#: How long a starting dockerd may take to answer.
START_TIMEOUT = 60.0
#: The runc wrapper (bash and jq: the runtime is executed once per container operation).
RUNC_WRAPPER = r"""#!/bin/bash
# Made by dirt (dirt/sandbox/docker.py): this machine's capability bounding set lacks CAP_SYS_RESOURCE,
# so runc refuses every privileged container that asks for it. Remove it from the spec, then run runc.
strip() { [ -f "$1" ] || return 0
  jq '(if .process then .process.capabilities else .capabilities end) as $c | if $c == null then . else
      (if .process then .process.capabilities else .capabilities end) |=
      with_entries(.value |= (if type=="array" then map(select(. != "CAP_SYS_RESOURCE")) else . end)) end' \
      "$1" > "$1.dirt-tmp" && mv "$1.dirt-tmp" "$1"; }
args=("$@"); bundle=""; spec=""; cmd=""
for ((i=0;i<${#args[@]};i++)); do case "${args[$i]}" in
  create|run|exec) [ -z "$cmd" ] && cmd="${args[$i]}";;
  --bundle|-b) bundle="${args[$((i+1))]}";; --bundle=*) bundle="${args[$i]#--bundle=}";;
  --process|-p) spec="${args[$((i+1))]}";; --process=*) spec="${args[$i]#--process=}";; esac; done
case "$cmd" in create|run) strip "${bundle:-.}/config.json";; exec) [ -n "$spec" ] && strip "$spec";; esac
exec RUNC "$@"
"""


def lacks_cap_sys_resource(status: Path = Path("/proc/self/status")) -> bool:
    """Is CAP_SYS_RESOURCE missing from this process's capability bounding set?"""
    for line in status.read_text().splitlines():
        if line.startswith("CapBnd:"):
            return not (int(line.split()[1], 16) >> CAP_SYS_RESOURCE) & 1
    return False


class DockerEngine:
    """``docker`` for kind: the daemon that answers, or one dirt starts (state under ``home``)."""

    def __init__(self, home: Path, *, docker: str = "docker", log: Callable[[str], None] = print) -> None:
        self.home = home
        self.docker = docker
        self.log = log

    @property
    def pidfile(self) -> Path:
        return self.home / "dockerd.pid"

    @property
    def logfile(self) -> Path:
        return self.home / "dockerd.log"

    def answers(self) -> bool:
        """Does a Docker daemon answer the CLI?"""
        try:
            return run([self.docker, "info", "--format", "{{.ServerVersion}}"], timeout=20,
                       what="docker info").returncode == 0
        except CommandError:
            return False

    def started_by_dirt(self) -> int | None:
        """The PID of the dockerd dirt started (recorded in ``home``), if it still runs."""
        pid = process.read_pid(self.pidfile)
        return pid if pid and process.alive(pid, _dockerd()) else None

    def ensure(self) -> None:
        """A daemon that answers: the one running, or one dirt starts now."""
        if self.answers():
            return
        if shutil.which(self.docker) is None:
            raise TargetError(f"kind: the docker CLI ({self.docker!r}) is not on PATH: install Debian's docker.io "
                              "(scripts/install-system-deps.sh does)")
        self.start()

    def start(self) -> int:
        dockerd = _dockerd()
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "daemon.json"
        settings: dict[str, object] = {"bip": BRIDGE_IP, "default-address-pools": [{"base": ADDRESS_POOL, "size": 24}]}
        if lacks_cap_sys_resource():
            wrapper = runc_wrapper()
            settings |= {"runtimes": {"runc-nosysres": {"path": str(wrapper)}}, "default-runtime": "runc-nosysres"}
            self.log(f"docker: this machine's capability bounding set lacks CAP_SYS_RESOURCE, which privileged "
                     f"containers (kind nodes) ask for: dockerd runs them through {wrapper}, which removes it")
        config.write_text(json.dumps(settings, indent=1))
        pid = process.start([str(dockerd), "--config-file", str(config)], log=self.logfile, pidfile=self.pidfile)
        self.log(f"docker: no daemon answered; started dockerd (PID {pid}, addresses from {ADDRESS_POOL}; "
                 f"log: {self.logfile})")
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if not process.alive(pid):
                raise TargetError(f"kind: dockerd exited at start; last lines of {self.logfile}:\n"
                                  + _tail(self.logfile))
            if time.monotonic() > deadline:
                process.stop(pid, timeout=10)
                raise TargetError(f"kind: dockerd did not answer within {START_TIMEOUT:g}s; see {self.logfile}")
            time.sleep(0.5)
        return pid

    def stop(self) -> bool:
        """Stop the dockerd dirt started (by its PID); a daemon dirt did not start is left alone."""
        pid = self.started_by_dirt()
        self.pidfile.unlink(missing_ok=True)
        if pid is None:
            return False
        # dockerd stops its containers (and its containerd) first: give it the time that takes.
        process.stop(pid, timeout=60)
        self.log(f"docker: stopped the dockerd dirt started (PID {pid})")
        return True


def runc_wrapper() -> Path:
    """The runc wrapper, written once into the binary cache (it outlives any one sandbox home)."""
    runc = shutil.which("runc") or shutil.which("runc", path="/usr/sbin:/sbin")
    if runc is None:
        raise BinaryError("runc not found: install Debian's runc (scripts/install-system-deps.sh does)")
    if shutil.which("jq") is None:
        raise BinaryError("jq not found: the runc wrapper edits container specs with it "
                          "(scripts/install-system-deps.sh installs it)")
    path = binaries.cache_root() / "docker" / "runc-nosysres"
    text = RUNC_WRAPPER.replace("RUNC", runc)
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + f".{os.getpid()}")
        partial.write_text(text)
        partial.chmod(0o755)
        partial.replace(path)
    return path


def _dockerd() -> Path:
    found = shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/usr/bin")
    if found is None:
        raise TargetError("kind: no Docker daemon answers and dockerd is not installed: install Debian's docker.io "
                          "(scripts/install-system-deps.sh does), or start your own")
    return Path(found)


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"

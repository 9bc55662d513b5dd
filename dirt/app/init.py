"""``dirt init``: a starter project that passes on the sandbox out of the box.

A team starting in an empty folder gets what a first drill needs, each file commented
for the next step: ``dirt.yaml`` (the sandbox target, a kind target for CI, a commented
kubeconfig target with its guardrails), a tiny app with its alert rule, the first
drill (a namespace deleted and restored from a backup, its alert expected) and its
playbook, a game day, a GitHub Actions workflow that runs the drill on kind through
dirt's action, and a ``.gitignore`` for the reports.

The files are package data (``dirt/starter``), copied as they are: scenarios and
playbooks hold dirt's own ``{{ var }}`` placeholders and the workflow GitHub's
``${{ }}``.  In files ending in ``.in`` (the suffix dropped) ``@DIRT_VERSION@`` becomes
dirt's version, and a leading ``dot-`` in a name becomes ``.`` (package data does not
carry hidden files well).  Nothing is ever overwritten:
every file is checked first and the first that exists is named (exit 2), unless
``force``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from dirt import __version__
from dirt.core.errors import UsageError

STARTER = "starter"
TEMPLATE_SUFFIX = ".in"
VERSION_MARK = "@DIRT_VERSION@"
HIDDEN_PREFIX = "dot-"


@dataclass(frozen=True)
class StarterFile:
    path: PurePosixPath  # where it goes, relative to the project folder
    text: str


def starter_files() -> list[StarterFile]:
    """Every file of the starter project, rendered, in a stable order."""
    files: list[StarterFile] = []
    for rel, item in _walk(resources.files("dirt").joinpath(STARTER), PurePosixPath()):
        text = item.read_text(encoding="utf-8")
        if rel.name.endswith(TEMPLATE_SUFFIX):
            text = text.replace(VERSION_MARK, __version__)
            rel = rel.with_name(rel.name[: -len(TEMPLATE_SUFFIX)])
        files.append(StarterFile(_shown(rel), text))
    return sorted(files, key=lambda f: str(f.path))


def _walk(folder: Traversable, rel: PurePosixPath) -> list[tuple[PurePosixPath, Traversable]]:
    found: list[tuple[PurePosixPath, Traversable]] = []
    for item in folder.iterdir():
        if item.name.startswith((".", "__")):
            continue
        if item.is_dir():
            found.extend(_walk(item, rel / item.name))
        else:
            found.append((rel / item.name, item))
    return found


def _shown(rel: PurePosixPath) -> PurePosixPath:
    return PurePosixPath(*("." + part[len(HIDDEN_PREFIX):] if part.startswith(HIDDEN_PREFIX) else part
                           for part in rel.parts))


def init_project(folder: Path, *, force: bool = False) -> list[Path]:
    """Write the starter project into ``folder`` (made if missing); return the files written.

    ``UsageError`` (exit 2), before anything is written, when a file already exists (unless ``force``)
    or when ``folder`` is a file.
    """
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: not a folder; give the folder to write the project into")
    files = starter_files()
    if not force:
        for f in files:
            existing = folder / f.path
            if existing.exists() or existing.is_symlink():
                raise UsageError(f"{existing}: already exists; dirt init never overwrites a file "
                                 "(move it away, or run again with --force to overwrite the starter's files)")
    written: list[Path] = []
    try:
        for f in files:
            path = folder / f.path
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():  # --force replaces the link itself, never the file it points to
                path.unlink()
            path.write_text(f.text, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise UsageError(f"{exc.filename or folder}: cannot write: {exc.strerror or exc}") from None
    return written


__all__ = ["StarterFile", "starter_files", "init_project"]

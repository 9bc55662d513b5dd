"""Read a file people wrote, without letting the file decide how long that takes.

Every document dirt reads (scenarios, ``dirt.yaml``, playbooks, rule files,
kubeconfigs named in ``dirt.yaml``) goes through ``read_text``:

- special files are refused *before* they are opened for reading: a FIFO named
  ``x.yaml`` would block for ever, a symlink to ``/dev/zero`` would fill memory;
- the size is bounded (a scenario is a few KiB; 1 MiB leaves plenty of room),
  and the read itself stops one byte past the bound, in case the file grows;
- the text must be UTF-8 (a byte-order mark is accepted and dropped); the
  error names the line and column of the first bad byte.

Problems come back as ``UnreadableFile`` with a line and column, so callers can
report them like any other located problem.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

#: Default bound for documents people write (scenarios, dirt.yaml, playbooks).
MAX_DOCUMENT_BYTES = 1024 * 1024
#: Prometheus rule files may be larger (generated rule sets).
MAX_RULES_BYTES = 16 * MAX_DOCUMENT_BYTES

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


class UnreadableFile(Exception):
    """The file cannot be read as a document; ``line``/``column`` locate it (1-based)."""

    def __init__(self, message: str, hint: str = "", line: int = 1, column: int = 1):
        self.message = message
        self.hint = hint
        self.line = line
        self.column = column
        super().__init__(message)


def special_kind(path: Path) -> str | None:
    """What ``path`` is when it is not a regular file (following symlinks), else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def read_bytes(path: Path | str, *, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The file's bytes, refusing special files and anything larger than ``limit``."""
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {exc.strerror or exc}", _hint_for(exc)) from None
    if not stat.S_ISREG(info.st_mode):
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise UnreadableFile(f"not a regular file ({kind}); refused without reading it",
                             "point dirt at the YAML file itself")
    if info.st_size > limit:
        raise UnreadableFile(f"file too large ({info.st_size:,} bytes; the limit is {limit:,})",
                             "split it, or check that this is the file you meant")
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO since the stat, open does not block.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {exc.strerror or exc}", _hint_for(exc)) from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnreadableFile("not a regular file; refused without reading it")
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise UnreadableFile(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise UnreadableFile(f"file too large (more than {limit:,} bytes)",
                             "split it, or check that this is the file you meant")
    return data


def decode(data: bytes) -> str:
    """UTF-8 text (a leading byte-order mark dropped); the error locates the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        before = data[:start]
        line = before.count(b"\n") + 1
        column = start - (before.rfind(b"\n") + 1) + 1
        raise UnreadableFile(f"not UTF-8 text (byte 0x{data[start]:02x})", "save the file as UTF-8",
                             line, column) from None


def read_text(path: Path | str, *, limit: int = MAX_DOCUMENT_BYTES) -> str:
    """``read_bytes`` then ``decode``: the one way dirt reads a document."""
    return decode(read_bytes(path, limit=limit))


def _hint_for(exc: OSError) -> str:
    import errno

    if exc.errno == errno.EACCES:
        return "the file is not readable by this user; fix its permissions"
    if exc.errno == errno.ENOENT:
        return "check the path"
    if exc.errno == errno.ELOOP:
        return "the path is a symlink loop"
    return ""

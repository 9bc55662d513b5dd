"""Playbooks: the Markdown runbooks a drill follows, links into them, and their executable steps.

A scenario step links to a section with ``playbook: "#restart-the-api-server"``
(in the scenario's default playbook) or ``playbook: "playbooks/x.md#section"``.
Anchors are computed the way GitHub computes them, so the same link works when
the file is browsed on a forge; ``dirt validate`` fails on a link that resolves
to nothing.

A fenced code block whose info string carries ``dirt-step=<id>`` is an
*executable step*::

    ```bash dirt-step=restart-apiserver timeout=60s
    kubectl --kubeconfig {{ kubeconfig }} get --raw /readyz
    ```

The recovery step ``playbook.run`` (``dirt.recovery.playbook``) runs the marked
blocks of the section it links to, in order, with ``{{ name }}`` replaced by
scenario variables — so a drill proves the written procedure works, not a
private copy of it.  This module only reads playbooks; it runs nothing.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dirt.core import safefile
from dirt.core.durations import parse_duration
from dirt.core.errors import PlaybookError
from dirt.core.templating import template_problems

STEP_MARKER = "dirt-step"
SHELLS = {"bash": "bash", "sh": "sh", "shell": "bash", "console": "bash", "zsh": "bash"}


@dataclass(frozen=True)
class PlaybookStep:
    id: str
    language: str
    code: str
    line: int  # line of the opening fence
    section: str  # anchor of the enclosing section
    timeout: float = 300.0


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    level: int
    line: int
    steps: tuple[PlaybookStep, ...] = ()
    text: str = ""  # the section's Markdown source, up to the next heading of any level


@dataclass(frozen=True)
class Playbook:
    path: Path
    title: str
    sections: dict[str, Section] = field(default_factory=dict)
    problems: tuple[tuple[int, str], ...] = ()  # (line, message) for malformed step markers

    def section(self, anchor: str) -> Section | None:
        return self.sections.get(anchor.lstrip("#"))

    def steps_in(self, anchor: str) -> list[PlaybookStep]:
        """Steps of the section and of its sub-sections, in document order."""
        start = self.section(anchor)
        if start is None:
            return []
        result: list[PlaybookStep] = []
        inside = False
        for sec in self.sections.values():
            if sec is start:
                inside = True
            elif inside and sec.level <= start.level:
                break
            if inside:
                result.extend(sec.steps)
        return result


_PUNCTUATION = re.compile(r"[^\w\- ]", re.UNICODE)


def slugify(title: str) -> str:
    """GitHub's heading anchor: lowercase, punctuation dropped, spaces to '-'."""
    text = unicodedata.normalize("NFC", title).strip().lower()
    text = _PUNCTUATION.sub("", text)
    return text.replace(" ", "-")


def _inline_text(token: Any) -> str:
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.children:
            parts.append(_inline_text(child))
    return "".join(parts) if token.children else token.content


def _parse_info(info: str) -> tuple[str, dict[str, str]]:
    words = info.split()
    language = words[0] if words and "=" not in words[0] else ""
    attrs: dict[str, str] = {}
    for word in words[1 if language else 0 :]:
        key, sep, value = word.partition("=")
        attrs[key.strip("{}.")] = value.strip("\"'{}") if sep else ""
    return language, attrs


def parse_playbook(text: str, path: Path) -> Playbook:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark")
    tokens = md.parse(text)
    lines = text.splitlines()
    headings: list[tuple[str, str, int, int]] = []  # anchor, title, level, line(0-based)
    used: dict[str, int] = {}
    fences: list[tuple[int, str, str]] = []  # line, info, content
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map:
            title = _inline_text(tokens[i + 1]).strip()
            base = slugify(title)
            count = used.get(base, 0)
            used[base] = count + 1
            anchor = base if count == 0 else f"{base}-{count}"
            headings.append((anchor, title, int(tok.tag[1]), tok.map[0]))
        elif tok.type == "fence" and tok.map:
            fences.append((tok.map[0], tok.info, tok.content))
    problems: list[tuple[int, str]] = []
    sections: dict[str, Section] = {}
    title = headings[0][1] if headings else path.stem
    seen_ids: set[str] = set()
    for n, (anchor, heading, level, start) in enumerate(headings):
        end = headings[n + 1][3] if n + 1 < len(headings) else len(lines)
        steps = []
        for line, info, content in fences:
            if not (start <= line < end):
                continue
            language, attrs = _parse_info(info)
            if STEP_MARKER not in attrs:
                continue
            step_id = attrs[STEP_MARKER]
            if not step_id:
                problems.append((line + 1, f"'{STEP_MARKER}' needs an id, e.g. {STEP_MARKER}=restart-apiserver"))
                continue
            if step_id in seen_ids:
                problems.append((line + 1, f"step id {step_id!r} is used twice"))
            seen_ids.add(step_id)
            if language not in SHELLS:
                problems.append((line + 1, f"step {step_id!r}: language {language or '(none)'!r} cannot be run; use bash or sh"))
            timeout = 300.0
            if "timeout" in attrs:
                try:
                    timeout = parse_duration(attrs["timeout"])
                except ValueError as exc:
                    problems.append((line + 1, f"step {step_id!r}: {exc}"))
            for problem in template_problems(content):
                at = line + 2 + content[:problem.offset].count("\n")
                problems.append((at, f"step {step_id!r}: {problem}"))
            steps.append(PlaybookStep(step_id, language, content, line + 1, anchor, timeout))
        sections[anchor] = Section(
            anchor, heading, level, start + 1, tuple(steps), "\n".join(lines[start:end]).strip()
        )
    return Playbook(path, title, sections, tuple(problems))


@functools.lru_cache(maxsize=256)
def _load_cached(path: str, mtime_ns: int) -> Playbook:
    p = Path(path)
    try:
        text = safefile.read_text(p)
    except safefile.UnreadableFile as exc:
        raise PlaybookError(f"{p}:{exc.line}:{exc.column}: cannot read playbook: {exc.message}") from None
    return parse_playbook(text, p)


def load_playbook(path: Path) -> Playbook:
    try:
        stat = path.stat()
    except OSError as exc:
        raise PlaybookError(f"{path}: cannot read playbook: {exc.strerror or exc}") from None
    return _load_cached(str(path.resolve()), stat.st_mtime_ns)


def find_file(reference: str, start: Path, *, root: Path | None = None) -> Path | None:
    """Resolve a playbook path against ``start`` and then each folder above it.

    With ``root``, only files that resolve (symlinks followed) inside ``root`` count:
    a link such as ``../../../../etc/passwd`` finds nothing.
    """
    ref = Path(reference)
    inside = root.resolve() if root is not None else None

    def ok(candidate: Path) -> bool:
        if not candidate.is_file():
            return False
        return inside is None or candidate.resolve().is_relative_to(inside)

    if ref.is_absolute():
        return ref.resolve() if ok(ref) else None
    for folder in (start, *start.parents):
        candidate = folder / ref
        if ok(candidate):
            return candidate.resolve()
        if inside is not None and folder.resolve() == inside:
            break
    return None


def link_url(display_path: str, anchor: str | None, base_url: str | None, *,
             local: Path | None = None, relative_to: Path | None = None) -> str:
    """The link a report shows for a playbook section.

    With ``playbook_base_url`` (dirt.yaml) the link points at the forge; without
    it, at the file on disk relative to the report's folder, so it opens locally.
    """
    import os

    suffix = f"#{anchor}" if anchor else ""
    if base_url:
        return base_url.rstrip("/") + "/" + display_path.lstrip("./") + suffix
    if local is not None and relative_to is not None:
        return os.path.relpath(local, relative_to.resolve()) + suffix
    return display_path + suffix

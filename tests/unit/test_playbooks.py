"""Playbooks: GitHub-style anchors, sections, and executable steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from dirt.documents.playbooks import link_url, parse_playbook, slugify


@pytest.mark.parametrize("title,anchor", [
    ("Restart the API server", "restart-the-api-server"),
    ("Step 2: check `etcdctl endpoint health`", "step-2-check-etcdctl-endpoint-health"),
    ("What's broken?", "whats-broken"),
    ("Recover — fast!", "recover--fast"),
    ("  Node_loss drill ", "node_loss-drill"),
])
def test_anchors_follow_github(title, anchor) -> None:
    assert slugify(title) == anchor


def test_duplicate_headings_get_numbered_anchors() -> None:
    book = parse_playbook("# T\n\n## Confirm\n\n## Confirm\n", Path("x.md"))
    assert list(book.sections) == ["t", "confirm", "confirm-1"]


def test_marked_fenced_blocks_are_executable_steps() -> None:
    text = (
        "# Book\n\n## Restart\n\nDo this:\n\n"
        "```bash dirt-step=restart timeout=30s\nkubectl get nodes\n```\n\n"
        "```bash\nnot a step\n```\n\n### Sub\n\n```sh dirt-step=sub\necho sub\n```\n\n## Other\n"
    )
    book = parse_playbook(text, Path("x.md"))
    steps = book.steps_in("restart")
    assert [(s.id, s.language, s.timeout, s.line) for s in steps] == [("restart", "bash", 30.0, 7), ("sub", "sh", 300.0, 17)]
    assert steps[0].code == "kubectl get nodes\n"
    assert book.steps_in("other") == []
    assert book.problems == ()


def test_malformed_step_markers_are_problems_with_lines() -> None:
    text = "# B\n\n```python dirt-step=x\nprint(1)\n```\n\n```bash dirt-step=\necho\n```\n"
    book = parse_playbook(text, Path("x.md"))
    assert book.problems == (
        (3, "step 'x': language 'python' cannot be run; use bash or sh"),
        (7, "'dirt-step' needs an id, e.g. dirt-step=restart-apiserver"),
    )


def test_links_point_at_the_forge_or_at_the_file_from_the_report(tmp_path) -> None:
    book = tmp_path / "playbooks" / "x.md"
    run_dir = tmp_path / "reports" / "run"
    assert link_url("playbooks/x.md", "fix", "https://git.example/org/repo/blob/main/") == \
        "https://git.example/org/repo/blob/main/playbooks/x.md#fix"
    assert link_url("playbooks/x.md", "fix", None, local=book, relative_to=run_dir) == "../../playbooks/x.md#fix"

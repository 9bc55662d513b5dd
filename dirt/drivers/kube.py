"""Kubernetes helpers more than one driver family needs: label selectors, readiness."""

from __future__ import annotations

from typing import Any

Selector = str | dict[str, str]


def selector_text(selector: Selector | None) -> str | None:
    if selector is None:
        return None
    if isinstance(selector, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    return selector


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []) or [])


def node_ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in node.get("status", {}).get("conditions", []) or [])

"""Alert rule files, as Prometheus reads them or as the Prometheus Operator's ``PrometheusRule``.

Teams that run kube-prometheus keep their rules as ``PrometheusRule`` objects
(``monitoring.coreos.com/v1``, the groups under ``spec``) and apply them to the
cluster; the sandbox's Prometheus, ``dirt coverage`` and ``promtool`` read a plain
rule file (``groups`` at the top).  One file can serve both: dirt reads either
form, and hands Prometheus the plain one.
"""

from __future__ import annotations

from typing import Any

PROMETHEUS_RULE = "PrometheusRule"


def is_prometheus_rule(data: Any) -> bool:
    return (isinstance(data, dict) and data.get("kind") == PROMETHEUS_RULE
            and str(data.get("apiVersion", "")).startswith("monitoring.coreos.com/"))


def rule_groups(data: Any) -> tuple[list[Any], tuple[str, ...]]:
    """The rule groups of a rule file's document, and the path to them in it (for error positions)."""
    if is_prometheus_rule(data):
        spec = data.get("spec")
        groups = spec.get("groups") if isinstance(spec, dict) else None
        return (groups if isinstance(groups, list) else []), ("spec", "groups")
    groups = data.get("groups") if isinstance(data, dict) else None
    return (groups if isinstance(groups, list) else []), ("groups",)


def as_prometheus(data: Any) -> dict[str, Any]:
    """The document as a plain Prometheus rule file: ``{groups: [...]}`` (a PrometheusRule's spec)."""
    if is_prometheus_rule(data):
        return {"groups": rule_groups(data)[0]}
    return data if isinstance(data, dict) else {}


__all__ = ["PROMETHEUS_RULE", "is_prometheus_rule", "rule_groups", "as_prometheus"]

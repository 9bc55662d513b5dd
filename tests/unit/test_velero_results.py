"""How the velero driver reads Velero's phases and its own results files (pure parsing; the real
server's behaviour is in tests/integration/test_velero.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dirt.recovery.velero import VeleroParams, judge, result_messages, split_accepted


def obj(phase: str | None, **status) -> dict:
    return {"metadata": {"name": "b1"}, "status": {"phase": phase, **status} if phase else status}


@pytest.mark.parametrize("status, verdict, detail", [
    (obj(None), None, "Backup b1 New"),
    (obj("InProgress"), None, "Backup b1 InProgress"),
    (obj("WaitingForPluginOperations"), None, "Backup b1 WaitingForPluginOperations"),
    # not final yet: Velero writes the results file (the reasons) when it gets to PartiallyFailed
    (obj("FinalizingPartiallyFailed", errors=1), None, "Backup b1 FinalizingPartiallyFailed"),
    (obj("Completed"), True, "Backup b1 Completed"),
    (obj("Completed", warnings=2), False, "Backup b1 Completed with 2 warning(s), 0 error(s)"),
    (obj("PartiallyFailed", errors=3), False, "Backup b1 PartiallyFailed (0 warning(s), 3 error(s))"),
    (obj("Failed", failureReason="error downloading backup"), False,
     "Backup b1 Failed (0 warning(s), 0 error(s)): error downloading backup"),
    (obj("FailedValidation", validationErrors=["location 'x' is unavailable", "bad ttl"]), False,
     "Backup b1 FailedValidation (0 warning(s), 0 error(s)): location 'x' is unavailable; bad ttl"),
])
def test_phases_are_judged_strictly(status, verdict, detail) -> None:
    assert judge(status, "Backup") == (verdict, detail)


def test_results_are_flattened_saying_where_each_applies() -> None:
    results = {"errors": {"velero": ["timed out"], "cluster": ["crd x: conflict"],
                          "namespaces": {"shop": ["error restoring configmaps/shop/a: denied"], "api": []}},
               "warnings": {}}
    assert result_messages(results, "errors") == [
        "velero: timed out", "cluster: crd x: conflict", "namespace shop: error restoring configmaps/shop/a: denied"]
    assert result_messages(results, "warnings") == []
    assert result_messages({}, "errors") == []


def test_only_warnings_a_pattern_matches_are_accepted() -> None:
    warnings = ["namespace shop: could not restore, ConfigMap:kube-root-ca.crt already exists. Warning: ...",
                "namespace shop: could not restore, ConfigMap:settings already exists. Warning: ..."]
    accepted, rest = split_accepted(warnings, [r"ConfigMap:kube-root-ca\.crt already exists"])
    assert accepted == warnings[:1] and rest == warnings[1:]
    assert split_accepted(warnings, []) == ([], warnings)


def test_a_bad_accept_pattern_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="is not a regular expression"):
        VeleroParams(accept_warnings=["ConfigMap:(unclosed"])
    with pytest.raises(ValidationError):
        VeleroParams(existing_resource_policy="overwrite")
    assert VeleroParams(existing_resource_policy="update").existing_resource_policy == "update"

"""Server timestamps and connection settings for Prometheus and Alertmanager."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from dirt.clients.monitoring import Endpoint, parse_time, safe_url, session_for
from dirt.core.errors import MonitoringError

BASE = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-05-01T12:00:00.123456789Z", BASE + 0.123456),  # Prometheus: nanoseconds
    ("2024-05-01T12:00:00.123Z", BASE + 0.123),  # Alertmanager: milliseconds
    ("2024-05-01T12:00:00.5Z", BASE + 0.5),
    ("2024-05-01T12:00:00Z", BASE),
    ("2024-05-01T14:00:00.25+02:00", BASE + 0.25),
    ("2024-05-01T07:00:00-05:00", BASE),
    ("2024-05-01T12:00:00.000000001Z", BASE),
])
def test_server_timestamps_parse_to_unix_seconds(text: str, expected: float) -> None:
    assert parse_time(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", [None, "", "0001-01-01T00:00:00Z"])
def test_missing_or_zero_timestamps_are_none(text: str | None) -> None:
    assert parse_time(text) is None


def test_urls_in_messages_drop_user_and_password() -> None:
    assert safe_url("https://user:hunter2@prom.example:9090/prometheus?x=1") == "https://prom.example:9090/prometheus"


def test_a_bearer_token_comes_from_the_named_environment_variable(monkeypatch) -> None:
    monkeypatch.setenv("PROM_TOKEN", "  abc123  \n")
    session = session_for(Endpoint(url="http://p", bearer_token_env="PROM_TOKEN"))
    assert session.headers["Authorization"] == "Bearer abc123"


def test_a_missing_variable_is_named_and_no_value_is_shown(monkeypatch) -> None:
    monkeypatch.delenv("PROM_TOKEN", raising=False)
    with pytest.raises(MonitoringError, match="^bearer token: environment variable PROM_TOKEN is not set$"):
        session_for(Endpoint(url="http://p", bearer_token_env="PROM_TOKEN"))


def test_basic_auth_and_ca_come_from_files(tmp_path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    session = session_for(Endpoint(url="https://am", username="drill", password_file=str(tmp_path / "pw"),
                                   ca_file=str(tmp_path / "ca.crt")))
    assert session.auth == ("drill", "s3cret")
    assert session.verify == str(tmp_path / "ca.crt")
    assert "Authorization" not in session.headers


def test_an_unreadable_secret_file_is_a_clean_error(tmp_path) -> None:
    with pytest.raises(MonitoringError, match=r"^bearer token: cannot read .*missing: No such file"):
        session_for(Endpoint(url="http://p", bearer_token_file=str(tmp_path / "missing")))

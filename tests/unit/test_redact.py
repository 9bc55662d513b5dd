"""Redaction: every secret shape masked, every configured secret masked, unrelated text left alone."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest

from dirt.clients.credentials import client_secrets, kubeconfig_secrets
from dirt.clients.monitoring import Endpoint, endpoint_secrets
from dirt.config import TargetConfig
from dirt.core.redact import MASK, clear_secrets, redact, redact_text, register_basic_auth, register_secret
from dirt.targets.base import make_target


@pytest.fixture(autouse=True)
def no_registered_secrets():
    """Each test starts from an empty registry and leaves one (the registry is process-wide)."""
    clear_secrets()
    yield
    clear_secrets()


# (text, the secret in it that must go, what must stay)
SHAPES = [
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
     "AWS_SECRET_ACCESS_KEY="),
    ("aws_secret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMIK7", "aws_secret_access_key"),
    ("export AWS_SESSION_TOKEN=FwoGZXIvYXdzEBYaDKs3cr3t", "FwoGZXIvYXdzEBYaDKs3cr3t", "export AWS_SESSION_TOKEN="),
    ("key id AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE", "key id "),
    ("temporary ASIAY34FZKBOKMUTVV7A here", "ASIAY34FZKBOKMUTVV7A", "temporary "),
    ("Authorization: Basic dXNlcjpzM2NyZXRwdw==", "dXNlcjpzM2NyZXRwdw==", "Authorization: Basic "),
    ("> Authorization: Bearer abcdefghijk123", "abcdefghijk123", "Authorization: Bearer "),
    ('curl -H "Authorization: token ghx123456" https://api.example', "ghx123456", "https://api.example"),
    ('Authorization: Digest username="bob", realm="r", response="6629fae49393a05397450978507c4ef1"',
     "6629fae49393a05397450978507c4ef1", "Authorization: Digest "),
    ("{'Authorization': 'ApiKey abcd1234', 'Accept': 'json'}", "abcd1234", "'Accept': 'json'"),
    ('{"authorization":"Custom QWxhZGRpbjpvcGVuIHNlc2FtZQ"}', "QWxhZGRpbjpvcGVuIHNlc2FtZQ", '{"authorization":"Custom'),
    ("Proxy-Authorization: Basic cHJveHk6cHc5OTk5OQ==", "cHJveHk6cHc5OTk5OQ==", "Proxy-Authorization: Basic "),
    ("mysql --password hunter2secret -h db", "hunter2secret", "-h db"),
    ("mysql --password=hunter2secret", "hunter2secret", "--password="),
    ("tool --password 'my long pass' --verbose", "my long pass", "--verbose"),
    ("kubectl --token=kubetoken98765 get pods", "kubetoken98765", "get pods"),
    ("mysql -u root -phunter2secret shop", "hunter2secret", "shop"),
    ("curl -u admin:s3cr3tpass http://x", "s3cr3tpass", "curl -u admin:"),
    ("curl --user=admin:s3cr3tpass http://x", "s3cr3tpass", "http://x"),
    ("x-api-key: abcdef123456789", "abcdef123456789", "x-api-key: "),
    ("X-Goog-Api-Key: AIzaSyA1234567", "AIzaSyA1234567", "X-Goog-Api-Key: "),
    ("GET /v1?api_key=abcdef123456&page=2", "abcdef123456", "&page=2"),
    ("PRIVATE-TOKEN: glpat1234567890abcd", "glpat1234567890abcd", "PRIVATE-TOKEN: "),
    ("cloned with ghp_0123456789abcdefghijABCDEFGHIJ012345", "ghp_0123456789abcdefghijABCDEFGHIJ012345", "cloned"),
    ("password=hunter2", "hunter2", "password="),
    ("password: hunter22", "hunter22", "password: "),
    ('{"token": "abc"}', "abc", '{"token": "'),
    ("Server=db;Password=Pa55word;Database=shop", "Pa55word", "Database=shop"),
    ("kubectl create secret generic db --from-literal=password=abc123", "abc123", "secret generic db"),
    ("client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo=", "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVk",
     "client-key-data: "),
    ("postgres://app:pw12345@db:5432/shop", "pw12345", "@db:5432/shop"),
    ("redis://:redispass99@cache:6379", "redispass99", "@cache:6379"),
    ("id_token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N", "eyJzdWIiOiIxMjM0NTY3",
     "id_token "),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234\n-----END RSA PRIVATE KEY-----",
     "MIIEowIBAAKCAQEA1234", ""),
]


@pytest.mark.parametrize(("text", "secret", "kept"), SHAPES, ids=[s[0][:40] for s in SHAPES])
def test_each_secret_shape_is_masked_and_its_surroundings_kept(text: str, secret: str, kept: str) -> None:
    out = redact_text(text)
    assert secret not in out
    assert MASK in out
    assert kept in out


UNRELATED = [
    "token file not found: /path/to/token",
    "secret 'db' missing",
    "secrets \"db\" is forbidden: User \"bob\" cannot get resource \"secrets\" in the namespace \"shop\"",
    "bearer token: environment variable PROM_TOKEN is not set",
    "password: environment variable PW is not set",
    "password: cannot read /etc/pw: No such file or directory",
    "token: expired",
    "authorization: denied for user bob",
    "Authorization: failed",
    "--password-file /tmp/pw",
    "token_env: PROM_TOKEN",
    "bearer_token_file: /var/run/secrets/token",
    "private_key: /etc/ssl/key.pem",
    "max_tokens=5",
    "docker run -u 1000:1000 busybox",
    "ps -u root",
    "docker run -p 8080:80 nginx",
    "http://127.0.0.1:9090/api/v1/rules",
    "https://prom.example:443/api/v1/query?query=up",
    "step command exited with 1: connection refused",
    "kube-apiserver took 12.5s to become ready",
    "deployment shop/frontend: 3/3 replicas available",
    "TokenReview is not a listable kind",
    "-----BEGIN CERTIFICATE-----",
]


@pytest.mark.parametrize("text", UNRELATED)
def test_unrelated_messages_are_left_exactly_as_they_are(text: str) -> None:
    assert redact_text(text) == text


def test_a_registered_value_is_masked_wherever_it_occurs_and_in_its_encodings() -> None:
    register_secret("planted-Token/42+x")
    b64 = base64.b64encode(b"planted-Token/42+x").decode()
    text = f"echo planted-Token/42+x; x=abcplanted-Token/42+x; {b64}; planted-Token%2F42%2Bx"
    out = redact_text(text)
    assert "planted-Token" not in out and b64.rstrip("=") not in out and "42%2Bx" not in out
    assert out.startswith("echo ***; x=abc***;")


def test_values_too_short_to_mean_anything_are_not_registered() -> None:
    register_secret("abc")
    register_secret("  ")
    register_secret(None)
    assert redact_text("abc is a word; abcdef too") == "abc is a word; abcdef too"


def test_basic_auth_registers_the_password_and_the_header_credentials() -> None:
    register_basic_auth("alice", "wonderland9")
    header = base64.b64encode(b"alice:wonderland9").decode()
    out = redact_text(f"user alice, pw wonderland9 sent as {header}")
    assert out == "user alice, pw *** sent as ***"


def test_each_line_of_a_registered_key_is_masked_even_printed_alone() -> None:
    register_secret("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY\n"
                    "-----END EC PRIVATE KEY-----\n")
    assert redact_text("tail: MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY") == "tail: ***"


def test_clear_secrets_forgets_every_registered_value() -> None:
    register_secret("forgettable-value")
    clear_secrets()
    assert redact_text("forgettable-value") == "forgettable-value"


def test_values_under_secret_keys_are_masked_and_references_to_them_are_not() -> None:
    data = {"env": {"DB_PASSWORD": "x", "API_TOKEN": "y"}, "bearer_token_env": "PROM_TOKEN",
            "password_file": "/etc/pw", "detail": "password=hunter2", "items": ["Bearer abcdefgh12345"]}
    assert redact(data) == {"env": {"DB_PASSWORD": MASK, "API_TOKEN": MASK}, "bearer_token_env": "PROM_TOKEN",
                            "password_file": "/etc/pw", "detail": f"password={MASK}", "items": [f"Bearer {MASK}"]}


# -- where secrets are read, they are registered -------------------------------------------------

def test_an_endpoints_token_and_password_are_registered_when_named(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTED_PROM_TOKEN", "prom-token-value-1\n")
    (tmp_path / "pw").write_text("am-password-2\n")
    endpoint = Endpoint(url="https://prom.example", bearer_token_env="PLANTED_PROM_TOKEN", username="ops",
                        password_file=str(tmp_path / "pw"))
    assert sorted(endpoint_secrets(endpoint)) == ["am-password-2", "prom-token-value-1"]
    basic = base64.b64encode(b"ops:am-password-2").decode()
    assert redact_text(f"prom-token-value-1 am-password-2 {basic}") == "*** *** ***"


def test_an_endpoint_whose_secret_is_missing_registers_nothing_and_does_not_raise() -> None:
    endpoint = Endpoint(url="https://prom.example", bearer_token_env="DIRT_TEST_UNSET_VARIABLE",
                        password_file="/nonexistent/pw", username="ops")
    assert endpoint_secrets(endpoint) == []


KUBECONFIG = """\
apiVersion: v1
kind: Config
current-context: a
contexts:
  - {name: a, context: {cluster: c, user: token-user}}
clusters:
  - {name: c, cluster: {server: "https://127.0.0.1:6443"}}
users:
  - name: token-user
    user: {token: kube-token-value-3}
  - name: basic-user
    user: {username: admin, password: kube-password-4}
  - name: cert-user
    user: {client-key-data: KEYDATA, client-key: key.pem}
  - name: file-user
    user: {tokenFile: token.txt}
  - name: oidc-user
    user:
      auth-provider:
        name: oidc
        config: {id-token: oidc-id-token-5, refresh-token: oidc-refresh-6, client-id: shop-app}
  - name: exec-user
    user:
      exec:
        command: aws
        env:
          - {name: AWS_SECRET_ACCESS_KEY, value: exec-env-secret-7}
          - {name: AWS_PROFILE, value: production}
"""


def test_every_credential_of_a_kubeconfig_is_registered(tmp_path: Path) -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAcertuserkeyline8\n-----END RSA PRIVATE KEY-----\n"
    key_data = base64.b64encode(pem.encode()).decode()
    (tmp_path / "key.pem").write_text("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIkeyfileline9\n")
    (tmp_path / "token.txt").write_text("file-token-value-10\n")
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.replace("KEYDATA", key_data))
    kubeconfig_secrets(str(tmp_path / "missing") + ":" + str(path))
    planted = ["kube-token-value-3", "kube-password-4", base64.b64encode(b"admin:kube-password-4").decode(),
               key_data, "MIIEpAIBAAKCAQEAcertuserkeyline8", "MHcCAQEEIkeyfileline9", "file-token-value-10",
               "oidc-id-token-5", "oidc-refresh-6", "exec-env-secret-7"]
    out = redact_text("\n".join(planted) + "\nshop-app production admin")
    assert not [p for p in planted if p in out]
    assert out.endswith("shop-app production admin")


def test_a_token_a_kubeconfig_plugin_returned_is_registered() -> None:
    class Configuration:
        api_key = {"authorization": "Bearer plugin-token-11"}
        username, password = "u", "client-password-12"

    client_secrets(Configuration())
    assert redact_text("plugin-token-11 client-password-12") == "*** ***"


def test_make_target_registers_the_targets_credentials_before_anything_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTED_AM_TOKEN", "alertmanager-token-13")
    (tmp_path / "kubeconfig").write_text(KUBECONFIG.replace("KEYDATA", ""))
    config = TargetConfig(provider="kubeconfig", settings={"kubeconfig": "kubeconfig"},
                          alertmanager={"url": "https://am.example", "bearer_token_env": "PLANTED_AM_TOKEN"})
    make_target("staging", config, tmp_path)
    assert redact_text("alertmanager-token-13 kube-token-value-3 oidc-refresh-6") == "*** *** ***"


def test_a_kind_target_registers_its_kubeconfig_without_asking_kind_for_one(tmp_path: Path) -> None:
    config = TargetConfig(provider="kind", settings={"kind_binary": str(tmp_path / "no-kind"),
                                                     "kubeconfig": "kind.kubeconfig"})
    target = make_target("ci", config, tmp_path)  # no kind binary: would fail if it were run
    assert target.secret_values() == []
    (tmp_path / "kind.kubeconfig").write_text(KUBECONFIG.replace("KEYDATA", ""))
    assert "kube-token-value-3" in target.secret_values()
    assert redact_text("kube-token-value-3") == MASK


def test_the_plain_display_masks_what_it_prints() -> None:
    from dirt.app.display import PlainDisplay

    register_secret("display-secret-14")
    stream = io.StringIO()
    display = PlainDisplay(stream)
    display.waiting("command 'curl -u ops:s3cr3tpass display-secret-14'", 6.0, 60.0)
    assert stream.getvalue() == "  … command 'curl -u ops:*** ***' 6s / 60s\n"

"""dirt.yaml is checked all at once when it is loaded: every problem located ``dirt.yaml:line:col``.

Each broken file below is a real file in a temporary folder, with the files its
settings name (a kubeconfig, a CA file, a token file) really there or really not;
the loader is the one ``dirt validate``, ``dirt targets`` and ``dirt run`` use.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from dirt.clients.monitoring import safe_url, url_problem
from dirt.config import load_config
from dirt.core.errors import ConfigError, UsageError

KUBECONFIG = """\
apiVersion: v1
current-context: prod
contexts:
  - name: prod
    context: {cluster: c, user: u}
clusters:
  - name: c
    cluster: {server: "https://prod.example:6443", certificate-authority: ca.pem}
users:
  - name: u
    user: {tokenFile: token}
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with a good kubeconfig, CA file and token file beside dirt.yaml."""
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "token").write_text("not-a-real-token\n")
    (tmp_path / "rules.yaml").write_text("groups: []\n")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("DIRT_TEST_UNSET_TOKEN", raising=False)
    monkeypatch.setenv("DIRT_TEST_TOKEN", "set")
    return tmp_path


def problems_of(folder: Path, text: str) -> list[str]:
    """The problem lines loading ``text`` as dirt.yaml gives, with the folder's path taken out."""
    (folder / "dirt.yaml").write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as caught:
        load_config(folder / "dirt.yaml")
    assert isinstance(caught.value, UsageError)  # exit 2
    return str(caught.value).replace(f"{folder}/", "").splitlines()


def kubeconfig_target(settings: str = "{kubeconfig: kubeconfig}", extra: str = "") -> str:
    return f"""\
        default_target: prod
        targets:
          prod:
            provider: kubeconfig
            {extra or "allow: [pods]"}
            settings: {settings}
        """


BROKEN = {
    "an IPv6 URL without its bracket": (
        kubeconfig_target(extra='prometheus: {url: "http://[::1"}'),
        "dirt.yaml:5:23: targets.prod.prometheus.url: 'http://[::1' is not a valid URL (Invalid IPv6 URL)"),
    "a URL that is not http": (
        kubeconfig_target(extra="alertmanager: {url: 'ftp://am.example'}"),
        "dirt.yaml:5:25: targets.prod.alertmanager.url: 'ftp://am.example' must start with http:// or https://"),
    "a port out of range": (
        kubeconfig_target(extra="prometheus: {url: 'https://prom:99999'}"),
        "dirt.yaml:5:23: targets.prod.prometheus.url: 'https://prom:99999' is not a valid URL "
        "(Port out of range 0-65535)"),
    "a URL without a host": (
        kubeconfig_target(extra="prometheus: {url: 'http://:9090'}"),
        "dirt.yaml:5:23: targets.prod.prometheus.url: 'http://:9090' has no host"),
    "a missing CA file": (
        kubeconfig_target(extra="prometheus: {url: 'https://prom', ca_file: certs/missing.pem}"),
        "dirt.yaml:5:48: targets.prod.prometheus.ca_file: certs/missing.pem: cannot read: "
        "No such file or directory (check the path)"),
    "a FIFO as CA file": (
        kubeconfig_target(extra="prometheus: {url: 'https://prom', ca_file: ca.fifo}"),
        "dirt.yaml:5:48: targets.prod.prometheus.ca_file: ca.fifo: is a FIFO (named pipe), not a regular file; "
        "refused without reading it (name the file itself)"),
    "a missing token file": (
        kubeconfig_target(extra="prometheus: {url: 'https://prom', bearer_token_file: no-token}"),
        "dirt.yaml:5:58: targets.prod.prometheus.bearer_token_file: no-token: cannot read: "
        "No such file or directory (check the path)"),
    "a folder as password file": (
        kubeconfig_target(extra="alertmanager: {url: 'https://am', username: u, password_file: ca.pem.d}"),
        "dirt.yaml:5:67: targets.prod.alertmanager.password_file: ca.pem.d: is a folder, not a regular file; "
        "refused without reading it (name the file itself)"),
    "a request timeout of zero": (
        kubeconfig_target(extra="prometheus: {url: 'https://prom', timeout: 0}"),
        "dirt.yaml:5:48: targets.prod.prometheus.timeout: input should be greater than 0"),
    "a missing kubeconfig": (
        kubeconfig_target("{kubeconfig: clusters/prod.yaml}"),
        "dirt.yaml:6:28: targets.prod.settings.kubeconfig: clusters/prod.yaml: cannot read: "
        "No such file or directory (check the path)"),
    "a context the kubeconfig lacks": (
        kubeconfig_target("{kubeconfig: kubeconfig, context: prd}"),
        "dirt.yaml:6:49: targets.prod.settings.context: context 'prd' is not in kubeconfig (did you mean 'prod'?)"),
    "an unknown provider": (
        "targets:\n  sandbox:\n    provider: sandbx\n",
        "dirt.yaml:3:15: targets.sandbox.provider: must be 'sandbox', 'kind', 'kubeconfig', 'fleet' or 'fake'; "
        "did you mean 'sandbox'?"),
    "an unknown provider setting": (
        kubeconfig_target("{kubeconfig: kubeconfig, contxt: prod}"),
        "dirt.yaml:6:40: unknown field 'contxt' (did you mean 'context'?)"),
    "a provider setting of the wrong type": (
        "targets:\n  sandbox:\n    provider: sandbox\n    settings: {nodes: many}\n",
        "dirt.yaml:4:23: targets.sandbox.settings.nodes: expected a whole number, got a string ('many') "
        "(write a plain number)"),
    "a duration that is not one": (
        kubeconfig_target("{kubeconfig: kubeconfig, timeout: forever}"),
        "dirt.yaml:6:49: targets.prod.settings.timeout: 'forever' is not a duration: write it like 500ms, 90s, 2m "
        "or 1h30m"),
    "an infinite duration": (
        kubeconfig_target("{kubeconfig: kubeconfig, timeout: .inf}"),
        "dirt.yaml:6:49: targets.prod.settings.timeout: inf is too long: at most 7d (604800s)"),
    "a command timeout of zero": (
        kubeconfig_target("{kubeconfig: kubeconfig, timeout: 0s}"),
        "dirt.yaml:6:49: targets.prod.settings.timeout: input should be greater than 0"),
    "a command with an unknown placeholder": (
        kubeconfig_target("{kubeconfig: kubeconfig, commands: {etcd_wipe: 'ssh {host} wipe'}}"),
        "dirt.yaml:6:62: targets.prod.settings.commands.etcd_wipe: unknown placeholder {host}; this command may "
        "use no placeholders (write a literal brace doubled)"),
    "a missing kind config file": (
        "default_target: ci\ntargets:\n  ci:\n    provider: kind\n    settings: {config: kind.yaml}\n",
        "dirt.yaml:5:24: targets.ci.settings.config: kind.yaml: cannot read: No such file or directory "
        "(check the path)"),
    "a missing sandbox rule file": (
        "targets:\n  sandbox:\n    provider: sandbox\n    settings: {rules: [rules.yaml, extra-rules]}\n",
        "dirt.yaml:4:36: targets.sandbox.settings.rules.1: extra-rules: cannot read: No such file or directory "
        "(check the path)"),
    "a missing rule folder": (
        "rules: [alerts/]\n",
        "dirt.yaml:1:9: rules.0: alerts: cannot read: No such file or directory (check the path)"),
    "a playbook base URL that is not a web address": (
        "playbook_base_url: git@forge:platform/dirt\n",
        "dirt.yaml:1:20: playbook_base_url: 'git@forge:platform/dirt' must start with http:// or https://"),
}


@pytest.mark.parametrize("text, expected", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_dirt_yaml_is_one_located_problem(folder: Path, text: str, expected: str) -> None:
    os.mkfifo(folder / "ca.fifo")
    (folder / "ca.pem.d").mkdir()

    assert problems_of(folder, text) == [expected]


def test_a_kubeconfig_that_is_not_yaml_is_located_in_the_kubeconfig(folder: Path) -> None:
    (folder / "kubeconfig").write_text("apiVersion: v1\ncontexts: [\n")

    assert problems_of(folder, kubeconfig_target()) == [
        "kubeconfig:3:1: YAML syntax error: did not find expected node content (fix the YAML syntax at this position)",
    ]


def test_what_the_kubeconfig_names_is_checked_where_the_kubeconfig_says_it(folder: Path) -> None:
    (folder / "kubeconfig").write_text(KUBECONFIG.replace("prod.example:6443", "prod.example:0"))
    (folder / "token").unlink()

    assert problems_of(folder, kubeconfig_target()) == [
        "kubeconfig:8:23: clusters.0.cluster.server: 'https://prod.example:0' has port 0; give a port from 1 to 65535 "
        "(the kubeconfig of target 'prod' (settings.kubeconfig))",
        "kubeconfig:11:23: users.0.user.tokenFile: token: cannot read: No such file or directory "
        "(check the path; the kubeconfig of target 'prod' (settings.kubeconfig))",
    ]


def test_every_problem_is_reported_at_once(folder: Path) -> None:
    problems = problems_of(folder, """\
        default_target: prod
        targets:
          prod:
            provider: kubeconfig
            prometheus: {url: "http://[::1"}
            alertmanager: {url: "https://am", ca_file: missing-ca.pem}
            settings: {kubeconfig: kubeconfig, timeout: -1s, commands: {stop_component: "stop {host}"}}
          kind-ci:
            provider: kindd
          sandbox:
            provider: sandbox
            settings: {nodes: 0}
        """)

    assert [p.split(": ")[0] for p in problems] == [
        "dirt.yaml:5:23", "dirt.yaml:6:48", "dirt.yaml:7:49", "dirt.yaml:7:81", "dirt.yaml:9:15", "dirt.yaml:12:23",
    ]
    assert "targets.kind-ci.provider: must be 'sandbox', 'kind', 'kubeconfig', 'fleet' or 'fake'; did you mean 'kind'?" \
        in problems[4]


def test_an_unset_token_variable_is_a_warning_until_a_drill_runs(folder: Path) -> None:
    (folder / "dirt.yaml").write_text(textwrap.dedent(kubeconfig_target(
        extra="prometheus: {url: 'https://prom', bearer_token_env: DIRT_TEST_UNSET_TOKEN}")))

    loaded = load_config(folder / "dirt.yaml")

    warning = (f"{folder}/dirt.yaml:5:57: warning: targets.prod.prometheus.bearer_token_env: environment variable "
               "DIRT_TEST_UNSET_TOKEN is not set (it must be set when a drill runs on this target)")
    assert [str(w) for w in loaded.warnings] == [warning]
    assert loaded.target("prod")[0] == "prod"  # plan and validate may go on
    with pytest.raises(ConfigError) as caught:
        loaded.target("prod", running=True)
    assert str(caught.value) == warning.replace(": warning: ", ": ")


def test_a_set_token_variable_is_no_warning(folder: Path) -> None:
    (folder / "dirt.yaml").write_text(textwrap.dedent(kubeconfig_target(
        extra="prometheus: {url: 'https://prom', bearer_token_env: DIRT_TEST_TOKEN}")))

    loaded = load_config(folder / "dirt.yaml")

    assert loaded.warnings == ()
    assert loaded.target("prod", running=True)[0] == "prod"


def test_an_implicit_kubeconfig_that_is_missing_is_only_a_warning(folder: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(folder / "ci-only.kubeconfig"))
    (folder / "dirt.yaml").write_text(textwrap.dedent(kubeconfig_target("{}")))

    loaded = load_config(folder / "dirt.yaml")

    assert [str(w) for w in loaded.warnings] == [
        f"{folder}/dirt.yaml:6:15: warning: targets.prod.settings: {folder}/ci-only.kubeconfig: cannot read: "
        "No such file or directory (check the path)"]


def test_endpoint_files_are_relative_to_dirt_yaml_not_the_current_folder(folder: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "dirt.yaml").write_text(textwrap.dedent(kubeconfig_target(
        extra="prometheus: {url: 'https://prom', ca_file: ca.pem, bearer_token_file: token}")))
    monkeypatch.chdir("/")

    endpoint = load_config(folder / "dirt.yaml").config.targets["prod"].prometheus

    assert endpoint is not None
    assert (endpoint.ca_file, endpoint.bearer_token_file) == (str(folder / "ca.pem"), str(folder / "token"))


def test_a_good_dirt_yaml_with_every_kind_of_target_loads(folder: Path) -> None:
    (folder / "dirt.yaml").write_text(textwrap.dedent("""\
        default_target: sandbox
        playbook_base_url: https://forge.example/platform/dirt/blob/main/
        rules: [rules.yaml]
        targets:
          sandbox:
            provider: sandbox
            settings: {rules: [rules.yaml], scrape_interval: 2s}
          kind-ci:
            provider: kind
            settings: {cluster: ci, timeout: 5m}
          prod:
            provider: kubeconfig
            allow: [pods]
            prometheus: {url: "https://[::1]:9090", ca_file: ca.pem, bearer_token_env: DIRT_TEST_TOKEN, timeout: 30s}
            settings: {kubeconfig: kubeconfig, context: prod, commands: {etcd_wipe: "ssh cp-1 wipe-etcd"}}
        """))

    loaded = load_config(folder / "dirt.yaml")

    assert sorted(loaded.config.targets) == ["kind-ci", "prod", "sandbox"]
    assert loaded.warnings == ()


@pytest.mark.parametrize("url", ["http://[::1", "http://host:port", "https://h:99999", "http://[zz]/"])
def test_a_malformed_url_never_raises_where_it_is_shown(url: str) -> None:
    assert url_problem(url)
    assert safe_url(url) == "(malformed URL)"


def test_a_url_with_credentials_is_shown_without_them() -> None:
    assert safe_url("https://user:secret@prom.example:9443/x?q=1") == "https://prom.example:9443/x"


# -- the command line: `dirt validate` and `dirt targets` ---------------------------------------------

BROKEN_DIRT_YAML = """\
default_target: prod
targets:
  prod:
    provider: kubeconfig
    prometheus: {url: "http://[::1"}
    settings: {kubeconfig: missing.kubeconfig, timeout: never}
  other:
    provider: kubeconfg
"""


def dirt(project, *args: str):  # noqa: ANN001, ANN201 - the Project fixture of tests/conftest.py
    import subprocess

    from tests.conftest import DIRT

    return subprocess.run([*DIRT, *args], cwd=project.root, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [["validate", "t.yaml"], ["targets"]])
def test_validate_and_targets_list_every_dirt_yaml_problem_and_exit_2(project, command: list[str]) -> None:
    from tests.conftest import basic_scenario

    project.scenario("t", basic_scenario())
    (project.root / "dirt.yaml").write_text(BROKEN_DIRT_YAML)

    proc = dirt(project, *command)

    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.replace(f"{project.root}/", "").splitlines()
    assert lines == [
        "dirt: error: dirt.yaml:5:23: targets.prod.prometheus.url: 'http://[::1' is not a valid URL "
        "(Invalid IPv6 URL)",
        "dirt.yaml:6:28: targets.prod.settings.kubeconfig: missing.kubeconfig: cannot read: No such file or directory "
        "(check the path)",
        "dirt.yaml:6:57: targets.prod.settings.timeout: 'never' is not a duration: write it like 500ms, 90s, 2m "
        "or 1h30m",
        "dirt.yaml:8:15: targets.other.provider: must be 'sandbox', 'kind', 'kubeconfig', 'fleet' or 'fake'; "
        "did you mean 'kubeconfig'?",
    ]


def test_targets_lists_a_valid_dirt_yaml_with_what_each_target_can_do(project) -> None:
    (project.root / "kubeconfig").write_text(KUBECONFIG.replace(", certificate-authority: ca.pem", "")
                                             .replace("{tokenFile: token}", "{token: t}"))
    (project.root / "dirt.yaml").write_text("""\
default_target: sandbox
targets:
  sandbox: {provider: sandbox}
  prod:
    provider: kubeconfig
    prometheus: {url: "https://prom.example", bearer_token_env: DIRT_TEST_UNSET_TOKEN}
    settings:
      kubeconfig: kubeconfig
      commands: {etcd_wipe: "ssh cp-1 wipe"}
""")

    proc = dirt(project, "targets")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1:] == [
        "sandbox (default): provider sandbox; allows cluster, command, container, control-plane, etcd, namespace, "
        "network, node, pods, workload; can do cluster, components, containers, etcd_read, etcd_snapshot, "
        "etcd_wipe, freeze, node_power",
        "prod: provider kubeconfig; allows non-destructive only; can do etcd_wipe",
    ]
    assert proc.stderr.replace(f"{project.root}/", "") == (
        "dirt.yaml:6:65: warning: targets.prod.prometheus.bearer_token_env: environment variable "
        "DIRT_TEST_UNSET_TOKEN is not set (it must be set when a drill runs on this target)\n")


def test_a_dirt_yaml_that_is_a_fifo_is_refused_not_skipped_or_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "dirt.yaml")
    child = tmp_path / "scenarios"
    child.mkdir()
    with pytest.raises(ConfigError, match=r"dirt.yaml:1:1: not a regular file \(a FIFO"):
        load_config(start=child)  # found from a folder below, as `dirt validate` finds it

"""The fleet's entry point without running it: its HAProxy config, what its admin socket answers, its errors.

The config is what decides whether users notice a member's loss, so it is read here as a person
reviewing it would: where it listens, how members are checked, what every answer carries.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dirt.core.errors import BinaryError, ConfigError, TargetError
from dirt.sandbox.component import Component
from dirt.sandbox.entry import (
    Backend,
    EntryPoint,
    EntrySettings,
    ServerStat,
    check_config,
    find_binary,
    haproxy_config,
    parse_show_stat,
)

MEMBERS = [Backend("shop-a", "127.0.0.1", 18081), Backend("shop-b", "127.0.0.2", 18082)]


def config(settings: EntrySettings | None = None, backends: list[Backend] = MEMBERS) -> str:
    return haproxy_config(folder=Path("/srv/fleet/entry"), port=18080, metrics_port=18404, backends=backends,
                          settings=settings or EntrySettings())


def section(text: str, header: str) -> list[str]:
    """The indented lines under ``header`` (``frontend entry``, ``backend members``...)."""
    lines = text.splitlines()
    start = lines.index(header) + 1
    body = []
    for line in lines[start:]:
        if not line.startswith("    "):
            break
        body.append(line.strip())
    return body


def test_everything_listens_on_127_0_0_1_only() -> None:
    text = config()
    binds = re.findall(r"^\s*bind (\S+)", text, re.MULTILINE)
    assert binds == ["127.0.0.1:18080", "127.0.0.1:18404"]
    assert "stats socket '/srv/fleet/entry/admin.sock' mode 600 level admin" in section(text, "global")
    assert "daemon" not in text


def test_each_member_is_health_checked_and_every_answer_names_it() -> None:
    backend = section(config(), "backend members")
    assert backend[:2] == ["balance roundrobin", "option httpchk GET /healthz"]
    assert "http-response set-header X-Served-By %s" in backend
    assert "server shop-a 127.0.0.1:18081 check inter 200ms fall 2 rise 2" in backend
    assert "server shop-b 127.0.0.2:18082 check inter 200ms fall 2 rise 2" in backend
    defaults = section(config(), "defaults")
    assert {"timeout connect 1s", "timeout server 2s", "timeout check 500ms", "retries 3", "option redispatch 1",
            "retry-on conn-failure empty-response response-timeout"} <= set(defaults)


def test_an_entry_point_without_health_checks_keeps_dead_members_in_rotation() -> None:
    backend = section(config(EntrySettings(health_check=False, redispatch=False)), "backend members")
    assert "server shop-a 127.0.0.1:18081" in backend
    assert not [line for line in backend if "check" in line]
    defaults = section(config(EntrySettings(health_check=False, redispatch=False)), "defaults")
    assert not [line for line in defaults if "redispatch" in line or "retry-on" in line]


def test_the_check_settings_are_written_as_given() -> None:
    text = config(EntrySettings(check_path="/ready", check_interval=1.5, fall=3, rise=1, retries=0))
    assert "option httpchk GET /ready" in text
    assert "check inter 1500ms fall 3 rise 1" in text
    assert "retries 0" in text


def test_the_exporter_answers_metrics_on_its_own_port() -> None:
    metrics = section(config(), "frontend metrics")
    assert metrics[0] == "bind 127.0.0.1:18404"
    assert "http-request use-service prometheus-exporter if { path /metrics }" in metrics
    assert "default_backend" not in " ".join(metrics)
    assert section(config(), "frontend entry")[-1] == "default_backend members"


def test_members_are_loopback_addresses_with_names_haproxy_accepts() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        Backend("shop-a", "10.0.0.1", 80)
    with pytest.raises(ConfigError, match="loopback"):
        Backend("shop-a", "localhost", 80)
    with pytest.raises(ConfigError, match="member name"):
        Backend("shop a\n    server evil 10.0.0.1:80", "127.0.0.1", 80)
    with pytest.raises(ConfigError, match="port 0"):
        Backend("shop-a", "127.0.0.1", 0)
    with pytest.raises(ConfigError, match="plain URL path"):
        EntrySettings(check_path="/healthz HTTP/1.1\\r\\nHost: x")
    with pytest.raises(ConfigError, match="fall"):
        EntrySettings(fall=0)
    with pytest.raises(ConfigError, match="unique; twice: shop-a"):
        EntryPoint(Path("/tmp/e"), port=1, metrics_port=2, backends=[MEMBERS[0], MEMBERS[0]])
    with pytest.raises(ConfigError, match="two ports"):
        EntryPoint(Path("/tmp/e"), port=1, metrics_port=1, backends=MEMBERS)
    with pytest.raises(ConfigError, match="a quote"):
        EntryPoint(Path("/tmp/it's"), port=1, metrics_port=2, backends=MEMBERS)
    with pytest.raises(ConfigError, match="Unix socket"):
        EntryPoint(Path("/tmp") / ("x" * 120), port=1, metrics_port=2, backends=MEMBERS)


#: What `show stat` answered (HAProxy 2.6): shop-b refused its check, shop-c was set to maint, shop-d
#: is not checked (captured from another entry point without checks).
SHOW_STAT = """\
# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act\
,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max\
,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate\
,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime\
,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health\
,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses\
,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint\
,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status\
,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd\
,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors\
,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections\
,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in\
,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,
entry,FRONTEND,,,0,1,256,1,0,0,0,0,1,,,,,OPEN,,,,,,,,,1,2,0,,,,0,1,0,1,,,,0,0,0,1,0,0,,1,1,1,,,0,0,0,0,,,,,,,,,,,,,\
,,,,,,,,http,,1,1,1,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,207,0,0,
members,shop-a,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,1,0,,1,3,1,,0,,2,0,,0,L7OK,200,1,0,0,0,0,0,0,,,,0,0,0,,,,,-1\
,,,0,0,0,0,,,,Layer7 check passed,,2,2,3,,,,127.0.0.1:23000,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,\
,,,,,,,,,,,,,,,,,,,,,
members,shop-b,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,1,1,,1,3,2,,0,,2,0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1\
,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,2,0,,,,127.0.0.2:23001,,http,,,,,,,,0,0,0,,,0,,0,0,0,0\
,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
members,shop-c,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,1,0,1,1,1,1,,1,3,3,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0\
,0,0,0,,,,,,,,,,,,127.0.0.3:23002,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
members,shop-d,0,0,0,0,,0,0,0,,0,,0,0,0,0,no check,1,1,0,,,0,,,1,3,1,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0\
,0,0,0,,,,,,,,,,,,127.0.0.4:23003,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
members,BACKEND,0,0,0,0,26,0,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,1,0,,1,3,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,\
,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,1,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0\
,0,11,11,3396,72,0,0,
metrics,FRONTEND,,,0,1,256,1,128,150,0,0,0,,,,,OPEN,,,,,,,,,1,4,0,,,,0,1,0,1,,,,0,1,0,0,0,0,,1,1,1,,,0,0,0,0,,,,,,,\
,,,,,,,,,,,,,,http,,1,1,1,1,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,1,153,147,0,0,
"""


def test_show_stat_gives_each_members_state_and_what_its_check_said() -> None:
    stats = parse_show_stat(SHOW_STAT)
    assert list(stats) == ["shop-a", "shop-b", "shop-c", "shop-d"]
    assert {name: s.status for name, s in stats.items()} == {
        "shop-a": "UP", "shop-b": "DOWN", "shop-c": "MAINT", "shop-d": "no check"}
    down = stats["shop-b"]
    assert down == ServerStat("shop-b", "DOWN", "L4CON", "Layer4 connection problem", "Connection refused",
                              "127.0.0.2:23001")
    assert down.describe() == "DOWN, check Layer4 connection problem: Connection refused"
    assert [s.in_rotation for s in stats.values()] == [True, False, False, True]
    assert stats["shop-c"].describe() == "MAINT"


def test_an_answer_that_is_not_show_stat_is_an_error() -> None:
    with pytest.raises(TargetError, match="Unknown command"):
        parse_show_stat("Unknown command: 'show stats'\n")
    with pytest.raises(TargetError, match="nothing"):
        parse_show_stat("")


def test_a_missing_haproxy_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(BinaryError) as caught:
        find_binary(str(tmp_path), debian=tmp_path / "haproxy")
    assert "scripts/install-system-deps.sh" in str(caught.value) and "make deps" in str(caught.value)
    assert "Debian's haproxy" in str(caught.value)
    fake = tmp_path / "bin" / "haproxy"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_binary(str(fake.parent), debian=tmp_path / "none") == fake


def haproxy() -> Path:
    try:
        return find_binary(os.environ.get("PATH", "") + ":/usr/sbin")
    except BinaryError as exc:
        pytest.fail(str(exc))


def test_a_config_haproxy_rejects_is_an_error_in_its_own_words(tmp_path: Path) -> None:
    bad = tmp_path / "haproxy.cfg"
    bad.write_text(config().replace("balance roundrobin", "balance sometimes"))
    with pytest.raises(TargetError) as caught:
        check_config(bad, binary=haproxy())
    message = str(caught.value)
    assert message.startswith(f"entry point: haproxy rejects {bad}: ")
    assert f"parsing [{bad}:" in message and "balance only supports 'roundrobin'" in message
    assert "[ALERT]" not in message and "Fatal errors" not in message


def test_the_generated_config_is_one_haproxy_accepts_without_a_warning(tmp_path: Path) -> None:
    from dirt.clients.commands import run

    for settings in (EntrySettings(), EntrySettings(health_check=False, redispatch=False)):
        path = tmp_path / "haproxy.cfg"
        path.write_text(haproxy_config(folder=tmp_path, port=18080, metrics_port=18404, backends=MEMBERS,
                                       settings=settings))
        result = run([str(haproxy()), "-c", "-f", str(path)], timeout=30)
        assert result.ok and "Configuration file is valid" in result.stdout, result.stdout + result.stderr
        assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_an_entry_point_is_a_component_that_reports_its_settings_while_stopped(tmp_path: Path) -> None:
    entry = EntryPoint(tmp_path, port=18080, metrics_port=18404, backends=MEMBERS,
                       settings=EntrySettings(health_check=False), binary=haproxy())
    assert isinstance(entry, Component)
    assert entry.processes == ("haproxy",) and entry.logs() == {"haproxy": tmp_path / "haproxy.log"}
    assert entry.healthy() == {"haproxy": False}
    status = entry.status()
    assert status["running"] is False and status["url"] == "http://127.0.0.1:18080"
    assert status["metrics_url"] == "http://127.0.0.1:18404/metrics"
    assert status["backends"][1] == {"name": "shop-b", "address": "127.0.0.2:18082", "state": None}
    assert status["settings"]["health_check"] is False and status["settings"]["retry_on"] == [
        "conn-failure", "empty-response", "response-timeout"]
    with pytest.raises(TargetError, match="admin socket .* did not answer"):
        entry.server_states()
    with pytest.raises(TargetError, match="no member shop-z"):
        entry.set_state("shop-z", "maint")

"""Chaos Toolkit activities as the faults and checks of a drill on the real sandbox.

A scenario written here (not one of the repository's) kills frontend pods with
``chaosk8s`` — which must find the sandbox through the kubeconfig dirt gives it,
not the operator's own — and checks the shop with a CTK http probe (a small
server on 127.0.0.1) and a CTK process probe (the sandbox's kubectl).  The drill
runs with the usual report, and the journal keeps what each activity returned.
"""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

pytest.importorskip("chaoslib")

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "scenarios" / "apps" / "shop" / "manifests"


class Storefront(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b"shop is open"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def storefront():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Storefront)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


SCENARIO = """\
apiVersion: dirt/v1
kind: Scenario
metadata: {{name: ctk-pod-kill}}
setup:
  - step: redeploy
    path: {shop}
steady_state:
  - check: ctk
    name: the storefront answers
    activity:
      type: probe
      name: storefront
      provider: {{type: http, url: "{url}/", timeout: 3}}
      tolerance: 200
inject:
  - fault: ctk
    name: kill two frontend pods
    family: pods
    activity:
      type: action
      name: terminate-frontend-pods
      provider:
        type: python
        module: chaosk8s.pod.actions
        func: terminate_pods
        arguments: {{label_selector: app=frontend, ns: shop, qty: 2, grace_period: 0}}
recover:
  - step: rollout.wait
    namespace: shop
    within: 2m
verify:
  - check: ctk
    name: frontend pods listed
    activity:
      type: probe
      name: list-frontend-pods
      provider:
        type: process
        path: kubectl
        arguments: [get, pods, --namespace, shop, --selector, app=frontend, -o, name]
      tolerance: {{type: regex, target: stdout, pattern: "pod/frontend-"}}
    within: 60s
  - check: ctk
    name: the storefront answers again
    activity:
      type: probe
      name: storefront
      provider: {{type: http, url: "{url}/", timeout: 3}}
      tolerance: 200
cleanup:
  - step: namespace.delete
    namespaces: [shop]
"""


def test_a_chaosk8s_fault_and_ctk_probes_run_as_a_drill_with_their_output_journaled(
        dirt, dirt_sandbox, storefront, tmp_path) -> None:
    path = tmp_path / "ctk-pod-kill.yaml"
    path.write_text(SCENARIO.format(shop=SHOP, url=storefront))
    result = dirt.run(path, report_dir=tmp_path / "reports")
    assert result.passed, result.failures
    journal = [json.loads(line) for line in (result.run_dir / "journal.jsonl").read_text().splitlines()]

    injected = next(e for e in journal if e["event"] == "fault.injected")
    killed = injected["state"]["output"]
    assert injected["state"]["activity"] == "terminate-frontend-pods"
    assert len(killed) == 2 and all(name.startswith("frontend-") for name in killed)

    ended = {e["name"]: e for e in journal if e["event"] == "step.end"}
    listed = ended["frontend pods listed"]["data"]["output"]
    assert listed["status"] == 0 and "pod/frontend-" in listed["stdout"]
    assert not {f"pod/{name}" for name in killed} & set(listed["stdout"].split())  # replaced, not the same pods
    answered = ended["the storefront answers again"]["data"]["output"]
    assert answered["status"] == 200 and answered["body"] == "shop is open"

    report = json.loads((result.run_dir / "report.json").read_text())
    fault = report["faults"][0]
    assert (fault["driver"], fault["family"], fault["state"]["output"]) == ("ctk", "pods", killed)
    step = next(s for s in report["steps"] if s["name"] == "the storefront answers again")
    assert step["detail"] == "probe 'storefront' within tolerance: status 200: shop is open"
    assert step["data"]["output"]["body"] == "shop is open"

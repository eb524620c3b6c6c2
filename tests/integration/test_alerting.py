"""Alerts reach a person: ``terraops serve`` → Prometheus (SLO rules) → Alertmanager → webhooks.

Every piece is the real one: Debian's ``prometheus`` scrapes a real ``terraops serve``
and evaluates the rules ``terraops slo rules`` writes; Debian's
``prometheus-alertmanager`` routes what fires with the ``alertmanager.yml`` of
docs/alerting.md (only the receivers' URLs and the grouping delays changed), to a
webhook receiver in the test process standing in for the pager and the chat room.

The breach is real traffic: flood has no champion on this server (never promoted), so
every flood prediction is answered ``503``, while uhi answers ``200`` to the same load.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_support import (
    ALERTMANAGER,
    PROMETHEUS,
    WebhookReceiver,
    by_label,
    eventually,
    query,
    start_alertmanager,
    start_prometheus,
    webhook_receiver,
)
from typer.testing import CliRunner

from serving_support import LEGACY_BODY, RunningProcess, TrainedHome, report, wait_until
from terraops.adapters.registry import ModelRegistry
from terraops.cli.main import app as cli
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.services import get_service
from terraops.settings import Settings

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2] / "docs" / "alerting.md"
MISSING = [binary for binary in (PROMETHEUS, ALERTMANAGER) if not Path(binary).exists()]
PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
BURN = {"TerraopsErrorBudgetBurnFast", "TerraopsErrorBudgetBurnSlow"}
ERRORS_RUNBOOK = "docs/runbooks/errors.md"
#: Every range window of the rules becomes this: ten scrapes at one per second.
FAST_WINDOW = "10s"


def documented_config(name: str) -> str:
    """The fenced YAML block of docs/alerting.md whose first line is ``# <name>``."""
    for block in re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S):
        if block.startswith(f"# {name}"):
            return str(block)
    raise AssertionError(f"docs/alerting.md has no yaml block starting with '# {name}'")


def generated_rules(out: Path) -> Path:
    """The rules file exactly as a user makes it: ``terraops slo rules --out FILE``."""
    result = CliRunner().invoke(cli, ["slo", "rules", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def fast_variant(rules: Path, out: Path) -> Path:
    """A test-only copy of the generated rules that fires in seconds, not hours.

    ``terraops slo rules`` has no option for shorter windows, and its real ones
    (5 m to 3 d, ``for`` up to 15 m) would keep this test waiting for hours. The
    copy keeps every expression, threshold, label and annotation; it only shrinks
    each range window to ``FAST_WINDOW``, each ``for`` to 1 s and each group's
    evaluation interval to 1 s. All burn-rate window pairs then look at the same
    ten seconds, so a 100 % error share fires the fast burn (page) and the slow
    burn (ticket) together: both routes of the Alertmanager configuration are
    exercised by one breach.
    """
    document = yaml.safe_load(rules.read_text())
    for group in document["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["expr"] = re.sub(r"\[\d+[smhdwy]\]", f"[{FAST_WINDOW}]", rule["expr"])
            if "for" in rule:
                rule["for"] = "1s"
    out.write_text(yaml.safe_dump(document, sort_keys=False, width=120))
    return out


def routed_to(receiver: WebhookReceiver) -> dict[str, Any]:
    """The documented alertmanager.yml, delivering to the test's webhook within a second."""
    config = yaml.safe_load(documented_config("alertmanager.yml"))
    config["route"].update(group_wait="1s", group_interval="1s")
    for entry in config["receivers"]:
        entry["webhook_configs"][0]["url"] = f"{receiver.url}/{entry['name']}"
    return config


def firing(receiver: WebhookReceiver, path: str, alertname: str, service: str) -> Any:
    """The first firing ``alertname`` of ``service`` delivered to ``path``, else None."""
    for alert in receiver.alerts(path):
        labels = alert["labels"]
        wanted = (labels["alertname"], labels.get("service")) == (alertname, service)
        if wanted and alert["status"] == "firing":
            return alert
    return None


#: Which alert each receiver (the URL path of its webhook) should get for the breach.
EXPECTED = {"pager": "TerraopsErrorBudgetBurnFast", "chat": "TerraopsErrorBudgetBurnSlow"}


def breach_until_delivered(
    client: httpx.Client, server: RunningProcess, receiver: WebhookReceiver, timeout: float
) -> tuple[dict[str, float], dict[str, set[int]]]:
    """Predict on both services until both receivers got flood's alert.

    The breach lasts only as long as the traffic (a rate over no requests is no
    ratio), so requests keep coming while the test waits. Returns the seconds from
    the first failing request to each delivery, and the statuses each service gave.
    """
    flood_body = {f.name: f.example for f in get_service("flood").features if f.required}
    bodies = {"uhi": LEGACY_BODY, "flood": flood_body}
    statuses: dict[str, set[int]] = {"uhi": set(), "flood": set()}
    delivered: dict[str, float] = {}
    started = time.monotonic()
    while len(delivered) < len(EXPECTED) and time.monotonic() - started < timeout:
        for _ in range(5):
            for service, body in bodies.items():
                answer = client.post(f"{server.url}/v1/{service}/predict", json=body)
                statuses[service].add(answer.status_code)
        for path, alertname in EXPECTED.items():
            if path not in delivered and firing(receiver, f"/{path}", alertname, "flood"):
                delivered[path] = time.monotonic() - started
        time.sleep(0.2)
    return delivered, statuses


@pytest.mark.slow
@pytest.mark.skipif(
    bool(MISSING),
    reason=f"{', '.join(MISSING)} not installed (scripts/install-system-deps.sh, or "
    "apt-get install prometheus prometheus-alertmanager)",
)
def test_burning_error_budget_pages_the_pager_and_tickets_the_chat_with_runbook(
    home_settings: Settings,
    trained_home: TrainedHome,
    start_server: Callable[..., RunningProcess],
    start_process: Callable[..., RunningProcess],
    tmp_path: Path,
) -> None:
    registry = ModelRegistry(home_settings)
    lifecycle.promote(home_settings, registry, "uhi", trained_home.uhi_versions[0])
    server = start_server(home_settings, ready=False)  # never ready: flood has no model
    uhi_url = f"{server.url}/v1/uhi/predict"
    wait_until(lambda: httpx.post(uhi_url, json=LEGACY_BODY).status_code == 200, 60, "uhi", server)
    rules = fast_variant(generated_rules(tmp_path / "rules.yml"), tmp_path / "rules-fast.yml")
    with webhook_receiver() as receiver, httpx.Client(timeout=10) as client:
        alertmanager = start_alertmanager(start_process, routed_to(receiver), tmp_path)
        prometheus = start_prometheus(
            start_process,
            server.url.removeprefix("http://"),
            tmp_path,
            rule_files=(rules,),
            alertmanager=alertmanager.url.removeprefix("http://"),
        )
        eventually(
            lambda: (by_label(query(prometheus, "up"), "job").get("terraops") == 1.0, None),
            "the first scrape",
        )
        delivered, statuses = breach_until_delivered(client, server, receiver, timeout=90)

    assert statuses == {"uhi": {200}, "flood": {503}}
    assert set(delivered) == set(EXPECTED), (
        f"delivered: {delivered}; received: {receiver.received}; "
        f"prometheus alerts: {httpx.get(f'{prometheus.url}/api/v1/alerts').json()}"
    )
    page = firing(receiver, "/pager", EXPECTED["pager"], "flood")
    ticket = firing(receiver, "/chat", EXPECTED["chat"], "flood")
    assert page["labels"]["severity"] == "page" and ticket["labels"]["severity"] == "ticket"
    for alert in (page, ticket):  # what the person reads, the live figure filled in
        annotations = alert["annotations"]
        assert annotations["runbook_url"] == ERRORS_RUNBOOK
        assert (DOCS.parent.parent / ERRORS_RUNBOOK).is_file()
        assert "flood" in annotations["summary"]
        assert "flood" in annotations["description"] and "100%" in annotations["description"]
    # Routing by severity: no page in the chat room, no ticket on the pager.
    assert {a["labels"]["severity"] for a in receiver.alerts("/pager")} == {"page"}
    assert {a["labels"]["severity"] for a in receiver.alerts("/chat")} == {"ticket"}
    # The healthy service under the same load burns nothing.
    everything = receiver.alerts("/pager") + receiver.alerts("/chat")
    burning = {a["labels"]["service"] for a in everything if a["labels"]["alertname"] in BURN}
    assert burning == {"flood"}
    timings = {f"breach_to_{to}_webhook_s": round(s, 2) for to, s in delivered.items()}
    report("alert-delivery", timings)


@pytest.mark.skipif(
    PROMTOOL is None or AMTOOL is None,
    reason="promtool or amtool not installed (apt-get install prometheus prometheus-alertmanager)",
)
def test_documented_configuration_is_valid_with_the_generated_rules(tmp_path: Path) -> None:
    """The prometheus.yml and alertmanager.yml users copy from docs/alerting.md load as-is
    (the rules path pointed at a file made by ``terraops slo rules``)."""
    rules = generated_rules(tmp_path / "terraops-slo-rules.yml")
    prometheus = yaml.safe_load(documented_config("prometheus.yml"))
    assert prometheus["rule_files"] == ["/etc/prometheus/terraops-slo-rules.yml"]
    prometheus["rule_files"] = [str(rules)]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prometheus))
    (tmp_path / "alertmanager.yml").write_text(documented_config("alertmanager.yml"))
    for command in (
        [str(PROMTOOL), "check", "config", "prometheus.yml"],
        [str(AMTOOL), "check-config", "alertmanager.yml"],
    ):
        checked = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    for severity, receiver in (("page", "pager"), ("ticket", "chat")):
        routed = subprocess.run(
            [str(AMTOOL), "config", "routes", "test", "--config.file=alertmanager.yml",
             f"severity={severity}", "service=uhi"],
            capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip
        assert routed.stdout.strip() == receiver, routed.stdout + routed.stderr

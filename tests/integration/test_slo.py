"""SLO checks from the prediction log and feedback, Prometheus rules, automatic rollback."""

# ruff: noqa: E501  (the promtool unit-test YAML below keeps one series per line)

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from monitoring_support import register_shifted_copy
from typer.testing import CliRunner

from serving_support import RunningProcess, TrainedHome, report, wait_until
from terraops.adapters.raster_io import read_scene
from terraops.adapters.registry import ModelRegistry
from terraops.cli.main import app as cli
from terraops.pipelines.lifecycle import aliases as lifecycle
from terraops.pipelines.monitoring.slo import MIN_FEEDBACK
from terraops.services import get_service
from terraops.settings import Settings

pytestmark = pytest.mark.integration
PROMTOOL = shutil.which("promtool")


def write_log(
    settings: Settings, service: str, version: int, statuses: list[int], latency_ms: float
) -> None:
    folder = settings.predictions_dir / service
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).isoformat()
    with (folder / f"{datetime.now(UTC):%Y-%m-%d}-1-0.jsonl").open("a") as fh:
        for i, status in enumerate(statuses):
            record = {
                "request_id": f"{version}-{i}", "index": 0, "ts": now, "service": service,
                "version": version, "features": {}, "prediction": None if status >= 500 else 1.0,
                "latency_ms": latency_ms, "status": status,
            }  # fmt: skip
            fh.write(json.dumps(record) + "\n")


def add_feedback(settings: Settings, version: int, n: int, error: float, tag: str) -> None:
    from terraops.adapters.feedback_store import FeedbackStore

    store = FeedbackStore(settings.feedback_db)
    for i in range(n):
        store.add(
            "uhi", task="regression", version=version, prediction=30.0 + error, observed=30.0,
            predicted_at=datetime.now(UTC).isoformat(), request_id=f"fb-{tag}-{version}-{i}",
        )  # fmt: skip


def test_slo_check_judges_the_champion_and_rolls_back_on_breach(
    home_settings: Settings,
    trained_home: TrainedHome,
    tmp_path: Path,
) -> None:
    v1, v2 = trained_home.uhi_versions
    registry = ModelRegistry(home_settings)
    lifecycle.promote(home_settings, registry, "uhi", v1)
    lifecycle.promote(home_settings, registry, "uhi", v2)
    runner = CliRunner()
    args = ["slo", "check", "uhi", "--window", "10m", "--json"]

    quiet = runner.invoke(cli, args, obj=home_settings)  # no traffic: nothing to judge, no breach
    assert quiet.exit_code == 0, quiet.output
    assert {o["status"] for o in json.loads(quiet.stdout)[0]["objectives"]} == {"no_data"}

    write_log(home_settings, "uhi", v2, [200] * 150, latency_ms=0.4)
    write_log(home_settings, "uhi", v1, [500] * 50, latency_ms=0.4)  # an older version's errors
    add_feedback(home_settings, v2, 25, error=0.5, tag="a")
    healthy = runner.invoke(cli, args, obj=home_settings)
    assert healthy.exit_code == 0, healthy.output
    objectives = {o["slo"]: o for o in json.loads(healthy.stdout)[0]["objectives"]}
    assert objectives["availability"]["observed"] == 0.0  # v1's 5xx are not v2's
    assert objectives["latency_p95"]["status"] == "ok"
    assert objectives["live_metric"]["observed"] == pytest.approx(0.5)

    # truth arrives: v2 is 2.25 K off on average
    add_feedback(home_settings, v2, 25, error=4.0, tag="b")
    breach = runner.invoke(cli, [*args, "--rollback-on-breach"], obj=home_settings)
    assert breach.exit_code == 1
    result = json.loads(breach.stdout)[0]
    assert result["breached"] == ["live_metric"]
    assert result["decision"] == "rollback" and "model quality" in result["reason"]
    assert result["rollback"]["done"] and result["rollback"]["to_version"] == v1
    assert registry.get_alias("uhi", "champion") == v1
    latest = lifecycle.history(home_settings, "uhi")[0]
    assert latest.action == "rollback" and "SLO breach over 10m" in (latest.reason or "")
    assert "live_metric: live mae 2.25" in (latest.reason or "")
    assert json.loads((home_settings.reports_dir / "slo" / "last.json").read_text())

    from terraops.pipelines.lifecycle.cards import write_model_card

    card, _ = write_model_card(home_settings, get_service("uhi"), tmp_path / "card.md", version=v2)
    assert "## Live performance" in card.read_text() and "MISSED" in card.read_text()


def serve_log(
    settings: Settings, version: int, n: int, latency_ms: float, failed_share: float = 0.0
) -> None:
    """``n`` point requests of uhi ``version`` as the server logs them (the prediction-log
    adapter), with the handler latency it would have measured; the first ``failed_share``
    of them answered 500 (the model raised)."""
    from terraops.adapters.prediction_log import PredictionLog

    names = tuple(get_service("uhi").feature_names)
    log = PredictionLog(settings.predictions_dir)
    failed = round(n * failed_share)
    for i in range(n):
        row, ok = [[0.5] * len(names)], i >= failed
        log.record(
            f"v{version}-{i}-{latency_ms:g}", "uhi", version, names, row,
            [31.0] if ok else None, latency_ms, 200 if ok else 500,
        )  # fmt: skip
    log.flush()


def check_and_roll_back(settings: Settings) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli,
        ["slo", "check", "uhi", "--window", "10m", "--json", "--rollback-on-breach"],
        obj=settings,
    )
    assert result.exit_code == 1, result.output  # a breach, whatever the decision
    report: dict[str, Any] = json.loads(result.stdout)[0]
    return report


@pytest.fixture
def released(home_settings: Settings, trained_home: TrainedHome) -> tuple[int, int]:
    """uhi v1 was champion, v2 replaced it: (previous, champion)."""
    v1, v2 = trained_home.uhi_versions
    registry = ModelRegistry(home_settings)
    lifecycle.promote(home_settings, registry, "uhi", v1, reason="first release")
    lifecycle.promote(home_settings, registry, "uhi", v2, reason="second release")
    return v1, v2


# (slo breached, champion's and previous version's latency ms and 5xx share in the same window)
HOST_LATENCY = ("latency_p95", (4.0, 0.0), (4.0, 0.0))  # the host is slow: both versions slow
HOST_ERRORS = ("availability", (0.4, 0.03), (0.4, 0.03))  # the host fails: both versions 3 % 5xx


@pytest.mark.parametrize(
    ("breached", "champion", "previous"),
    [HOST_LATENCY, HOST_ERRORS],
    ids=["latency-breach-both-versions-slow", "availability-breach-both-versions-failing"],
)
def test_a_serving_breach_the_host_causes_alerts_and_keeps_the_champion(
    home_settings: Settings,
    released: tuple[int, int],
    breached: str,
    champion: tuple[float, float],
    previous: tuple[float, float],
) -> None:
    v1, v2 = released
    serve_log(home_settings, v1, 150, *previous)
    serve_log(home_settings, v2, 150, *champion)

    result = check_and_roll_back(home_settings)

    assert result["breached"] == [breached]
    assert result["decision"] == "alert-only" and result["rollback"] is None
    assert f"v{v1}" in result["reason"] and "the host, not the release" in result["reason"]
    assert ModelRegistry(home_settings).get_alias("uhi", "champion") == v2
    assert lifecycle.history(home_settings, "uhi")[0].action == "promote"
    saved = json.loads((home_settings.reports_dir / "slo" / "last.json").read_text())
    assert saved["services"][0]["decision"] == "alert-only"


@pytest.mark.parametrize(
    ("breached", "champion", "previous"),
    [
        ("latency_p95", (4.0, 0.0), (0.4, 0.0)),  # only the new version is slow
        ("availability", (0.4, 0.03), (0.4, 0.0)),  # only the new version raises
    ],
    ids=["latency-breach-only-new-version-slow", "availability-breach-only-new-version-failing"],
)
def test_a_serving_breach_the_new_version_causes_rolls_back(
    home_settings: Settings,
    released: tuple[int, int],
    breached: str,
    champion: tuple[float, float],
    previous: tuple[float, float],
) -> None:
    v1, v2 = released
    serve_log(home_settings, v1, 150, *previous)
    serve_log(home_settings, v2, 150, *champion)

    result = check_and_roll_back(home_settings)

    assert result["breached"] == [breached]
    assert result["decision"] == "rollback" and "the new version is the cause" in result["reason"]
    assert result["rollback"]["done"] and result["rollback"]["to_version"] == v1
    assert ModelRegistry(home_settings).get_alias("uhi", "champion") == v1
    entry = lifecycle.history(home_settings, "uhi")[0]
    assert (entry.action, entry.from_version, entry.to_version) == ("rollback", v2, v1)
    assert f"{breached}: " in (entry.reason or "") and "new version is the cause" in (
        entry.reason or ""
    )


def test_a_latency_breach_without_the_previous_version_in_the_window_only_alerts(
    home_settings: Settings, released: tuple[int, int]
) -> None:
    """The promotion is older than the window: nothing shows the release is the cause."""
    v1, v2 = released
    serve_log(home_settings, v1, 20, 0.4)  # too few requests to judge v1
    serve_log(home_settings, v2, 150, 4.0)

    result = check_and_roll_back(home_settings)

    assert result["decision"] == "alert-only" and "served 20 requests" in result["reason"]
    assert ModelRegistry(home_settings).get_alias("uhi", "champion") == v2


def test_a_quality_breach_with_enough_truth_rolls_back_even_on_a_slow_host(
    home_settings: Settings, released: tuple[int, int]
) -> None:
    v1, v2 = released
    serve_log(home_settings, v1, 150, 4.0)
    serve_log(home_settings, v2, 150, 4.0)  # the host is slow too: not why it rolls back
    add_feedback(home_settings, v2, MIN_FEEDBACK - 1, error=4.0, tag="few")
    few = CliRunner().invoke(
        cli, ["slo", "check", "uhi", "--window", "10m", "--json"], obj=home_settings
    )
    assert json.loads(few.stdout)[0]["decision"] == "alert-only"  # 19 truths: no_data, no blame

    add_feedback(home_settings, v2, 1, error=4.0, tag="enough")
    result = check_and_roll_back(home_settings)

    assert set(result["breached"]) == {"latency_p95", "live_metric"}
    assert result["decision"] == "rollback" and "model quality" in result["reason"]
    assert result["rollback"]["done"] and result["rollback"]["to_version"] == v1
    assert ModelRegistry(home_settings).get_alias("uhi", "champion") == v1


def test_critical_drift_of_the_champions_traffic_rolls_back(
    home_settings: Settings, released: tuple[int, int], tiny_scenes: list[Path]
) -> None:
    """A day far hotter than the training days reaches the champion: the drift check
    (the server's scheduled one) finds critical drift, and the SLO check rolls back."""
    import pandas as pd

    from terraops.adapters.prediction_log import PredictionLog
    from terraops.pipelines.monitoring.drift_report import scene_examples
    from terraops.pipelines.monitoring.drift_schedule import check_drift_from_log

    v1, v2 = released
    uhi = get_service("uhi")
    cities = [
        scene_examples(uhi, read_scene(s), 20.0).sample(100, random_state=1) for s in tiny_scenes
    ]
    rows = pd.concat(cities)  # both training cities: only the day's background moved
    rows["reference_temperature"] += 15.0  # beyond the training days' range by > 3 K
    names = tuple(uhi.feature_names)
    log = PredictionLog(home_settings.predictions_dir)
    for i, row in enumerate(rows[list(names)].itertuples(index=False)):
        log.record(f"hot-{i}", "uhi", v2, names, [list(row)], [35.0], 0.4)
    log.flush()
    state = check_drift_from_log(home_settings, uhi, "1h")
    assert state["critical"] and "reference_temperature" in state["critical_features"]

    result = check_and_roll_back(home_settings)

    assert result["breached"] == ["drift"]
    assert result["decision"] == "rollback" and "model quality breached (drift)" in result["reason"]
    assert ModelRegistry(home_settings).get_alias("uhi", "champion") == v1
    assert "critical drift" in (lifecycle.history(home_settings, "uhi")[0].reason or "")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_prometheus_rules_check_and_unit_tests(tmp_path: Path) -> None:
    rules = tmp_path / "terraops-slo-rules.yml"
    result = CliRunner().invoke(cli, ["slo", "rules", "--out", str(rules)])
    assert result.exit_code == 0, result.output
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (tmp_path / "tests.yml").write_text(PROMTOOL_TESTS.replace("RULES", rules.name))
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", "tests.yml"], capture_output=True, text=True, cwd=tmp_path
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


# uhi answers 2 % of requests with 500 from minute 60 on (20× its 0.1 % budget), flood is healthy;
# uhi's last-hour live MAE is 3 K (target 1 K), flood's Brier 0.05 (target 0.08); uhi's p95 is
# ~4 ms (all requests in the 2.5-5 ms bucket), flood's under 1 ms.
PROMTOOL_TESTS = """
rule_files: [RULES]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'terraops_request_duration_seconds_count{service="uhi",version="3",endpoint="predict",status="200"}'
        values: '0+980x180'
      - series: 'terraops_request_duration_seconds_count{service="uhi",version="3",endpoint="predict",status="500"}'
        values: '0x60 0+20x120'
      - series: 'terraops_request_duration_seconds_count{service="flood",version="1",endpoint="predict",status="200"}'
        values: '0+1000x180'
      - series: 'terraops_request_duration_seconds_bucket{service="uhi",version="3",endpoint="predict",status="200",le="0.0025"}'
        values: '0x180'
      - series: 'terraops_request_duration_seconds_bucket{service="uhi",version="3",endpoint="predict",status="200",le="0.005"}'
        values: '0+980x180'
      - series: 'terraops_request_duration_seconds_bucket{service="uhi",version="3",endpoint="predict",status="200",le="+Inf"}'
        values: '0+980x180'
      - series: 'terraops_request_duration_seconds_bucket{service="flood",version="1",endpoint="predict",status="200",le="0.001"}'
        values: '0+1000x180'
      - series: 'terraops_request_duration_seconds_bucket{service="flood",version="1",endpoint="predict",status="200",le="+Inf"}'
        values: '0+1000x180'
      - series: 'terraops_feedback_total{service="uhi",version="3"}'
        values: '0+10x180'
      - series: 'terraops_feedback_error_total{service="uhi",version="3",metric="mae"}'
        values: '0+30x180'
      - series: 'terraops_feedback_total{service="flood",version="1"}'
        values: '0+10x180'
      - series: 'terraops_feedback_error_total{service="flood",version="1",metric="brier"}'
        values: '0+0.5x180'
    promql_expr_test:
      - expr: terraops:request_errors:ratio_rate1h
        eval_time: 150m
        exp_samples:
          - labels: 'terraops:request_errors:ratio_rate1h{service="uhi"}'
            value: 0.02
          - labels: 'terraops:request_errors:ratio_rate1h{service="flood"}'
            value: 0
      - expr: round(terraops:live_error:rate1h, 0.001)
        eval_time: 2h
        exp_samples:
          - labels: '{service="uhi"}'
            value: 3
          - labels: '{service="flood"}'
            value: 0.05
    alert_rule_test:
      # At 150 m the 1 h window has seen 5xx for 90 minutes, so the recorded ratio is 2 %
      # whatever offset Prometheus gives the recording group (it hashes the rule file's
      # path, which differs per run; at 2 h the window still held the error-free hour).
      - alertname: TerraopsErrorBudgetBurnFast
        eval_time: 150m
        exp_alerts:
          - exp_labels: {severity: page, service: uhi, slo: availability}
            exp_annotations:
              summary: 'uhi: 5xx error budget (0.001) burning fast'
              description: 'uhi answers 2% of prediction requests with 5xx; at this rate the budget of 0.001 is gone in about two days.'
              runbook_url: docs/runbooks/errors.md
      - alertname: TerraopsErrorBudgetBurnFast
        eval_time: 70m
        exp_alerts: []  # 10 minutes of errors: the 5 m window burns, the 1 h window not yet
      - alertname: TerraopsLiveErrorAboveTarget
        eval_time: 2h
        exp_alerts:
          - exp_labels: {severity: page, service: uhi, slo: live_metric}
            exp_annotations:
              summary: 'uhi: live error misses the target 1 (ground truth of the last hour)'
              description: 'uhi: live error 3 on the ground truth received in the last hour (target <= 1).'
              runbook_url: docs/runbooks/model-quality.md
      - alertname: TerraopsLatencyP95High
        eval_time: 2h
        exp_alerts:
          - exp_labels: {severity: ticket, service: uhi, slo: latency_p95}
            exp_annotations:
              summary: 'uhi: p95 point-predict latency above 1.5 ms'
              description: 'uhi: p95 of point predictions is 4.875ms over the last 5 minutes and hour (objective 1.5 ms).'
              runbook_url: docs/runbooks/latency.md
"""


def test_slo_breach_rolls_back_a_serving_champion_end_to_end(
    home_settings: Settings,
    trained_home: TrainedHome,
    tiny_scenes: list[Path],
    start_server: Callable[..., RunningProcess],
    tmp_path: Path,
) -> None:
    """Promote a model that runs 5 K hot → truth arrives → the server's own scheduled SLO
    check sees the breach and rolls back → the previous champion answers again."""
    from terraops.pipelines.monitoring.drift_report import scene_examples

    v1 = trained_home.uhi_versions[0]
    registry = ModelRegistry(home_settings)
    lifecycle.promote(home_settings, registry, "uhi", v1, reason="good release")
    bad = register_shifted_copy(home_settings, "uhi", v1, tmp_path, shift=5.0)
    server = start_server(
        home_settings.model_copy(update={"services": ["uhi"]}),
        TERRAOPS_SLO_CHECK_INTERVAL_S="1",
        TERRAOPS_SLO_WINDOW="10m",
        TERRAOPS_SLO_ROLLBACK_ON_BREACH="true",
        TERRAOPS_FEEDBACK_TOKEN="slo-feedback",
    )
    lifecycle.promote(home_settings, registry, "uhi", bad, reason="deliberately bad release")
    uhi = get_service("uhi")
    rows = scene_examples(uhi, read_scene(tiny_scenes[0]), 20.0).sample(30, random_state=1)
    bodies = [{f: float(getattr(r, f)) for f in uhi.feature_names} for r in rows.itertuples()]
    with httpx.Client(timeout=10) as client:

        def version_serving() -> int:
            answer = client.post(f"{server.url}/v1/uhi/predict", json=bodies[0])
            return int(answer.json()["model"]["version"])

        wait_until(lambda: version_serving() == bad, 30, "bad model served", server)
        ids = []
        for body in bodies:
            answer = client.post(f"{server.url}/v1/uhi/predict", json=body)
            assert answer.status_code == 200 and answer.json()["model"]["version"] == bad
            ids.append(answer.headers["X-Request-Id"])
        time.sleep(1.2)  # the prediction log flushes every second
        t_feedback = time.monotonic()
        feedback_at = datetime.now(UTC)
        for request_id, truth in zip(ids, rows["lst"], strict=True):
            sent = client.post(
                f"{server.url}/v1/uhi/feedback",
                json={"request_id": request_id, "observed": float(truth)},
                headers={"Authorization": "Bearer slo-feedback"},
            )
            assert sent.status_code in (200, 201), sent.text
        t_sent = time.monotonic()
        wait_until(lambda: registry.get_alias("uhi", "champion") == v1, 60, "rollback", server)
        t_rolled = time.monotonic()
        wait_until(lambda: version_serving() == v1, 30, "previous champion served", server)
        t_served = time.monotonic()
        failed = [client.post(f"{server.url}/v1/uhi/predict", json=b).status_code for b in bodies]
    assert set(failed) == {200}
    entry = lifecycle.history(home_settings, "uhi")[0]
    assert (entry.action, entry.from_version, entry.to_version) == ("rollback", bad, v1)
    assert "live_metric: live mae" in (entry.reason or "") and entry.actor == "tester"
    logged = server.log.read_text()  # the schedule's log line states the decision and why
    assert "uhi: SLO breach over 10m" in logged and "decision rollback: model quality" in logged
    timeline = {
        "feedback_posted_s": round(t_sent - t_feedback, 2),
        "breach_to_rollback_committed_s": round(t_rolled - t_sent, 2),
        "rollback_to_previous_champion_serving_s": round(t_served - t_rolled, 2),
        "feedback_to_previous_champion_serving_s": round(t_served - t_feedback, 2),
        "history_rollback_after_feedback_s": round(
            (entry.created_at - feedback_at).total_seconds(), 2
        ),
        "reason": entry.reason,
    }
    report("slo-rollback-timeline", timeline)
    print(json.dumps(timeline, indent=2))
    assert timedelta(seconds=0) < entry.created_at - feedback_at < timedelta(seconds=60)

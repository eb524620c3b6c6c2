"""The drift, data-quality, registry and disk alerts, unit-tested with promtool.

``terraops slo rules`` writes the rules; ``promtool test rules`` replays
synthetic series through them: each alert must fire on its signal, with its
labels and its runbook link, and stay quiet on healthy series, on old
data-quality refusals and on a stale drift verdict.
"""

# ruff: noqa: E501  (the promtool unit-test YAML below keeps one series per line)

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from terraops.cli.main import app as cli

pytestmark = pytest.mark.integration
PROMTOOL = shutil.which("promtool")


def run_promtool_tests(tmp_path: Path, tests: str) -> None:
    rules = tmp_path / "terraops-slo-rules.yml"
    written = CliRunner().invoke(cli, ["slo", "rules", "--out", str(rules)])
    assert written.exit_code == 0, written.output
    (tmp_path / "tests.yml").write_text(tests.replace("RULES", rules.name))
    tested = subprocess.run(
        [PROMTOOL or "promtool", "test", "rules", "tests.yml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_each_new_alert_fires_on_its_signal_and_stays_quiet_otherwise(tmp_path: Path) -> None:
    run_promtool_tests(tmp_path, NEW_ALERTS)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_drift_alert_ignores_a_verdict_older_than_a_day(tmp_path: Path) -> None:
    run_promtool_tests(tmp_path, STALE_DRIFT)


# uhi's drift check turns critical at minute 10 (checked every minute), flood's stays clean;
# a uhi data-quality check fails at minute 20, flood carries 3 refusals from before the server
# started (no new one); server a loses the registry and most of its disk at minute 10, b is fine.
NEW_ALERTS = """
rule_files: [RULES]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'terraops_drift_critical{service="uhi",instance="a:8000",job="terraops"}'
        values: '0x10 1x50'
      - series: 'terraops_drift_critical_features{service="uhi",instance="a:8000",job="terraops"}'
        values: '0x10 1x50'
      - series: 'terraops_drift_last_check_timestamp_seconds{service="uhi",instance="a:8000",job="terraops"}'
        values: '0+60x60'
      - series: 'terraops_drift_critical{service="flood",instance="a:8000",job="terraops"}'
        values: '0x60'
      - series: 'terraops_drift_last_check_timestamp_seconds{service="flood",instance="a:8000",job="terraops"}'
        values: '0+60x60'
      - series: 'terraops_data_quality_failures_total{service="uhi",instance="a:8000",job="terraops"}'
        values: '0x20 1x40'
      - series: 'terraops_data_quality_failures_total{service="flood",instance="a:8000",job="terraops"}'
        values: '3x60'
      - series: 'terraops_registry_up{instance="a:8000",job="terraops"}'
        values: '1x10 0x50'
      - series: 'terraops_registry_up{instance="b:8000",job="terraops"}'
        values: '1x60'
      - series: 'terraops_home_free_ratio{instance="a:8000",job="terraops"}'
        values: '0.5x10 0.04x50'
      - series: 'terraops_home_free_ratio{instance="b:8000",job="terraops"}'
        values: '0.5x60'
    alert_rule_test:
      - alertname: TerraopsDriftCritical
        eval_time: 30m
        exp_alerts:
          - exp_labels: {severity: ticket, service: uhi, slo: drift}
            exp_annotations:
              summary: 'uhi: critical drift of the served inputs'
              description: "The latest drift check of uhi's prediction log against the champion's training data found dataset drift (a critical feature, or too many features, drifted)."
              runbook_url: docs/runbooks/drift.md
      - alertname: TerraopsDriftCritical
        eval_time: 9m
        exp_alerts: []
      - alertname: TerraopsDataQualityFailing
        eval_time: 30m
        exp_alerts:
          - exp_labels: {severity: ticket, service: uhi}
            exp_annotations:
              summary: 'uhi: data refused by a data-quality check'
              description: '1 data-quality check(s) of uhi failed in the last hour (reports under the home''s reports/quality).'
              runbook_url: docs/runbooks/data-quality.md
      - alertname: TerraopsDataQualityFailing
        eval_time: 15m
        exp_alerts: []
      - alertname: TerraopsRegistryUnavailable
        eval_time: 30m
        exp_alerts:
          - exp_labels: {severity: page, instance: 'a:8000', job: terraops}
            exp_annotations:
              summary: 'a:8000: model registry unreachable'
              description: 'The server at a:8000 has not reached the model registry for 5 minutes: it serves the models it has, but cannot follow promotions or rollbacks.'
              runbook_url: docs/runbooks/registry-outage.md
      - alertname: TerraopsRegistryUnavailable
        eval_time: 13m
        exp_alerts: []  # down for 3 minutes: a blip, not yet an outage
      - alertname: TerraopsDiskAlmostFull
        eval_time: 30m
        exp_alerts:
          - exp_labels: {severity: page, instance: 'a:8000', job: terraops}
            exp_annotations:
              summary: 'a:8000: terraops home almost full'
              description: 'Only 4% of the filesystem holding TERRAOPS_HOME is free (alert below 10%).'
              runbook_url: docs/runbooks/disk-full.md
      - alertname: TerraopsDiskAlmostFull
        eval_time: 9m
        exp_alerts: []
"""

# A critical verdict whose last check ran at time 0 and never again: fresh at 30 m, stale at 25 h.
STALE_DRIFT = """
rule_files: [RULES]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'terraops_drift_critical{service="uhi",instance="a:8000",job="terraops"}'
        values: '1x1600'
      - series: 'terraops_drift_last_check_timestamp_seconds{service="uhi",instance="a:8000",job="terraops"}'
        values: '0x1600'
    alert_rule_test:
      - alertname: TerraopsDriftCritical
        eval_time: 30m
        exp_alerts:
          - exp_labels: {severity: ticket, service: uhi, slo: drift}
            exp_annotations:
              summary: 'uhi: critical drift of the served inputs'
              description: "The latest drift check of uhi's prediction log against the champion's training data found dataset drift (a critical feature, or too many features, drifted)."
              runbook_url: docs/runbooks/drift.md
      - alertname: TerraopsDriftCritical
        eval_time: 25h
        exp_alerts: []
"""

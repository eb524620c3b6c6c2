"""What the on-call gauges read from the home: drift states and data-quality reports."""

from __future__ import annotations

import json
from pathlib import Path

from terraops.pipelines.monitoring.drift_schedule import drift_state_path, latest_drift_state
from terraops.pipelines.monitoring.quality_tally import QualityFailureTally
from terraops.settings import Settings


def write_report(folder: Path, name: str, suite: str, passed: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"suite": suite, "passed": passed, "failed": []}))
    return path


def test_quality_tally_counts_failed_reports_per_service_and_follows_deletions(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path)
    folder = settings.reports_dir / "quality"
    tally = QualityFailureTally(settings.reports_dir)
    assert tally.counts(["uhi", "flood"]) == {"uhi": 0, "flood": 0, "scene": 0}
    write_report(folder, "uhi-1", "uhi.examples", passed=False)
    write_report(folder, "uhi-2", "uhi.examples", passed=True)
    old = write_report(folder, "flood-1", "flood.examples", passed=False)
    write_report(folder, "scene-1", "scene.inputs", passed=False)
    (folder / "broken.json").write_text("{not json")
    assert tally.counts(["uhi", "flood"]) == {"uhi": 1, "flood": 1, "scene": 1}
    old.unlink()
    assert tally.counts(["uhi", "flood"]) == {"uhi": 1, "flood": 0, "scene": 1}


def test_a_drift_report_written_by_the_cli_reads_as_the_latest_state(tmp_path: Path) -> None:
    """``terraops monitor drift --out <home>/reports/drift/uhi/latest.html`` (the cron line)
    leaves a summary without status or verdict: the reader derives them."""
    settings = Settings(home=tmp_path)
    assert latest_drift_state(settings, "uhi") is None
    summary = {
        "service": "uhi",
        "created_at": "2025-06-01T12:00:00+00:00",
        "dataset_drift": True,
        "share_of_drifted_features": 0.25,
        "features": {
            "reference_temperature": {"drifted": True, "critical": True},
            "ndvi": {"drifted": True, "critical": False},
            "albedo": {"drifted": False, "critical": False},
        },
    }
    path = drift_state_path(settings, "uhi")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(summary))
    state = latest_drift_state(settings, "uhi")
    assert state is not None
    assert state["status"] == "checked" and state["critical"] is True
    assert state["critical_features"] == ["reference_temperature"]
    assert state["checked_at_s"] == 1748779200.0

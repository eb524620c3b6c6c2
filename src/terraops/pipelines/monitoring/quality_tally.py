"""Refused data-quality checks, counted from the reports they leave under the home.

The server never runs a Great Expectations suite itself: training, evaluation
sets and ``terraops quality check`` do, and every check writes a JSON report
under ``<home>/reports/quality/`` (:mod:`terraops.pipelines.monitoring.quality`).
The count of **failed** reports is what ``terraops_data_quality_failures_total``
exports — the one record of refusals that every process sees:

- a service suite (``<service>.examples``: training data, an evaluation set, a
  checked table or a scene's cells) counts under that service;
- the scene-inputs suite (``scene.inputs``: a broken raster, refused before
  any service's features are computed) counts under ``service="scene"``.

Reports are written once and never change, so each file is read once per
process; deleting old reports lowers the count (Prometheus reads that as a
counter reset, which ``increase()`` handles).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from terraops.adapters.state_files import json_files, read_json_object

SCENE_LABEL = "scene"
SCENE_SUITE = "scene.inputs"
SERVICE_SUITE_SUFFIX = ".examples"


def quality_reports_dir(reports_dir: Path) -> Path:
    return Path(reports_dir) / "quality"


class QualityFailureTally:
    """Failed data-quality reports per service, read incrementally at each call."""

    def __init__(self, reports_dir: Path) -> None:
        self.folder = quality_reports_dir(reports_dir)
        self._failed_by_file: dict[str, str | None] = {}  # file name -> label, None = passed
        self._lock = threading.Lock()  # two scrapes at once share the cache

    def counts(self, services: Iterable[str]) -> dict[str, int]:
        """``{service: failed reports}`` for ``services`` and ``scene`` (zeros included)."""
        with self._lock:
            return self._counts(list(services))

    def _counts(self, services: list[str]) -> dict[str, int]:
        present = set()
        for path in json_files(self.folder):
            present.add(path.name)
            if path.name not in self._failed_by_file:
                self._failed_by_file[path.name] = failed_label(read_json_object(path))
        for gone in set(self._failed_by_file) - present:
            del self._failed_by_file[gone]
        counts = dict.fromkeys([*services, SCENE_LABEL], 0)
        for label in self._failed_by_file.values():
            if label in counts:
                counts[label] += 1
        return counts


def failed_label(report: dict[str, object] | None) -> str | None:
    """The service a failed report counts under; ``None`` when it passed or is unreadable."""
    if report is None or report.get("passed") is not False:
        return None
    suite = str(report.get("suite") or "")
    if suite == SCENE_SUITE:
        return SCENE_LABEL
    if suite.endswith(SERVICE_SUITE_SUFFIX):
        return suite.removesuffix(SERVICE_SUITE_SUFFIX)
    return None


__all__ = ["QualityFailureTally", "failed_label", "quality_reports_dir"]

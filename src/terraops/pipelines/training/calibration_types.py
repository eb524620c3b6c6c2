"""What calibration hands to training (shared by the regression and classifier paths)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terraops.adapters.uncertainty_bundle import ARTIFACT


@dataclass
class Calibration:
    """What training logs: metadata for the model, run metrics, the report and the writer."""

    metadata: dict[str, Any]
    metrics: dict[str, float]
    report: dict[str, Any]
    write: Callable[[Path], Path] = field(repr=False)

    def artifacts(self, folder: Path) -> dict[str, Path]:
        """The pyfunc artifacts to log (name → folder), written under ``folder``."""
        return {ARTIFACT: self.write(folder / ARTIFACT)}

"""What every model card is computed from: one registered version and its run's records.

A leaf module so that each service kind's card sections (tabular in
:mod:`terraops.pipelines.lifecycle.cards`, segmentation in
:mod:`terraops.pipelines.segmentation.card`) can take the same input without
importing the builder that calls them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terraops.adapters.model_versions import ModelVersionInfo
from terraops.settings import Settings


@dataclass(frozen=True)
class CardRun:
    """The registered version a card describes, read once by the builder.

    ``fingerprint`` is the run's ``data_fingerprint.json``; ``out_path`` is the
    card's file, beside which sections put their plots (:meth:`beside`).
    """

    settings: Settings
    service: Any
    info: ModelVersionInfo
    fingerprint: dict[str, Any]
    out_path: Path

    def beside(self, suffix: str) -> Path:
        """A sibling of the card named after it: ``<card>-<suffix>``."""
        return self.out_path.with_name(f"{self.out_path.stem}-{suffix}")


@dataclass(frozen=True)
class CardRecipe:
    """One kind of service's part of the card: its Markdown, and the hint without a champion.

    ``markdown(run)`` may read more of the run (plots, reports) and write
    files beside the card; the builder has made the card's folder.
    """

    markdown: Callable[[CardRun], str]
    no_champion_hint: str


__all__ = ["CardRecipe", "CardRun"]

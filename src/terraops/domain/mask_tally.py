"""Pixel counts behind a scene's mask fractions, summed over the strips of an import."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class MaskTally:
    """Pixel counts behind the mask fractions of the manifest, summed over strips."""

    pixels: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, masks: Mapping[str, np.ndarray]) -> None:
        first = next(iter(masks.values()), None)
        self.pixels += 0 if first is None else int(first.size)
        for name, mask in masks.items():
            self.counts[name] = self.counts.get(name, 0) + int(np.count_nonzero(mask))

    def fractions(self) -> dict[str, float]:
        return {
            name: round(count / self.pixels, 6) if self.pixels else 0.0
            for name, count in self.counts.items()
        }

    def __iadd__(self, other: MaskTally) -> MaskTally:
        self.pixels += other.pixels
        for name, count in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + count
        return self

    def write_fractions(self, record: dict[str, Any]) -> None:
        """``masked_fraction`` (the ``masked`` count) and every other count's
        ``mask_fractions`` into an import record."""
        fractions = self.fractions()
        record["masked_fraction"] = fractions.pop("masked")
        record["mask_fractions"] = fractions

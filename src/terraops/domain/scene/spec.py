"""What a synthetic scene is asked to be: seed, size, resolution, morphology, storm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from terraops.domain.scene.morphologies import MORPHOLOGIES
from terraops.errors import InvalidInputError

GENERATOR_VERSION = "2.1.0"
"""Bumped whenever the same spec would produce different pixels (cache key)."""

PHYSICS_MODES: tuple[str, ...] = ("varied", "nominal")
MIN_SIZE_PX = 64
MAX_SIZE_PX = 8192
MIN_EXTENT_M = 200.0


@dataclass(frozen=True)
class SceneSpec:
    """A validated request for one synthetic city.

    * ``dense`` — old town: small irregular blocks, perimeter buildings, few trees.
    * ``sprawl`` — suburbs: large rectangular blocks, detached houses, gardens.
    * ``coastal`` — a port town: sea along one edge, the river mouth into it,
      dense blocks near the water and houses inland.
    """

    seed: int
    size: int = 1024
    resolution: float = 2.0
    morphology: str = "dense"
    rainfall_mm: float = 50.0
    reference_temperature_c: float | None = None
    """The day's rural background LST (°C); ``None`` draws a summer day in 24–40 °C
    (or 32 °C with nominal physics). Setting it (e.g. 42 for a heat wave) changes
    only the temperature: every other coefficient is drawn as without it, so
    imagery, layout, the other LST terms and the noise stay identical."""
    physics: str = "varied"
    """``varied``: the city draws its LST coefficients from the published ranges
    (:class:`~terraops.domain.scene.lst.LSTPhysics`); ``nominal``: the central
    published values, the same for every city (tests, comparisons)."""

    def __post_init__(self) -> None:
        if self.morphology not in MORPHOLOGIES:
            raise InvalidInputError(
                f"unknown morphology {self.morphology!r}",
                hint=f"use one of: {', '.join(MORPHOLOGIES)}",
            )
        if not MIN_SIZE_PX <= self.size <= MAX_SIZE_PX:
            raise InvalidInputError(
                f"size must be between {MIN_SIZE_PX} and {MAX_SIZE_PX} pixels, got {self.size}",
                hint="e.g. --size 1024",
            )
        if not (np.isfinite(self.resolution) and 0.1 <= self.resolution <= 30.0):
            raise InvalidInputError(
                f"resolution must be between 0.1 and 30 m per pixel, got {self.resolution}",
                hint="e.g. --resolution 2",
            )
        if self.size * self.resolution < MIN_EXTENT_M:
            raise InvalidInputError(
                f"scene too small: {self.size} px × {self.resolution} m = "
                f"{self.size * self.resolution:g} m; a city needs at least {MIN_EXTENT_M:g} m",
                hint="increase --size or --resolution",
            )
        if not (np.isfinite(self.rainfall_mm) and 0.0 <= self.rainfall_mm <= 1000.0):
            raise InvalidInputError(
                f"rainfall must be between 0 and 1000 mm, got {self.rainfall_mm}",
                hint="e.g. --rainfall 50",
            )
        if self.physics not in PHYSICS_MODES:
            raise InvalidInputError(
                f"unknown physics {self.physics!r}",
                hint=f"use one of: {', '.join(PHYSICS_MODES)}",
            )
        t = self.reference_temperature_c
        if t is not None and not (np.isfinite(t) and -30.0 <= t <= 70.0):
            raise InvalidInputError(
                f"reference temperature must be between -30 and 70 °C, got {t}",
                hint="e.g. --reference-temperature 42 for a heat-wave day",
            )
        if not 0 <= self.seed < 2**63:
            raise InvalidInputError(f"seed must be a non-negative integer, got {self.seed}")

    @property
    def extent_m(self) -> float:
        return self.size * self.resolution

    @property
    def name(self) -> str:
        name = f"{self.morphology}-s{self.seed}-{self.size}px-{self.resolution:g}m"
        if self.reference_temperature_c is not None:
            name += f"-t{self.reference_temperature_c:g}c"
        if self.physics != "varied":
            name += f"-{self.physics}"
        return name

    def rngs(self, *names: str) -> dict[str, np.random.Generator]:
        """Independent random streams per component, all derived from the seed.

        Separate streams keep a change in one component (say, more trees) from
        reshuffling every other one.
        """
        morph = MORPHOLOGIES.index(self.morphology)
        children = np.random.SeedSequence([self.seed, morph]).spawn(len(names))
        return {n: np.random.default_rng(c) for n, c in zip(names, children, strict=True)}

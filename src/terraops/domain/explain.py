"""Why a cell got its prediction: per-feature contributions grouped into drivers.

A model's per-cell contributions (TreeSHAP, computed by
:meth:`terraops.adapters.model_bundle.Predictor.explain`) are additive:
``baseline + Σ contributions == prediction``. Eleven feature contributions are
too many to read on a map, so they are summed into a handful of **drivers** a
planner recognises (vegetation; built form and albedo; water; terrain; the
day's reference). Summing keeps the additivity: ``baseline + Σ drivers ==
prediction`` too.

Rules, stated once here:

- **Dominant driver** of a cell: the driver with the *largest positive push*
  (it answers "why is it hot / flood-prone here"), among the drivers that vary
  from place to place. The day's reference is not ranked: it is the same for
  every cell of a scene (an offset the model adds), so on a hot day it would
  paint the whole map one colour and hide the spatial answer; the sentence
  reports it separately. A cell that no ranked driver pushes up gets
  :data:`NO_PUSH` (it is at or below the typical cell).
- **Sentence**: the overall direction (the sum of the ranked drivers: above or
  below the baseline) picks the word ("Hot" / "Cool"), then the one or two
  largest drivers pushing that way are named with their signed values and the
  unit; a second driver is named only if it is at least a quarter of the
  first, so the sentence never dresses up noise as a cause.

Pure: no I/O, numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

#: Dominant-driver code of a cell that no ranked driver pushes up (and of no-data cells
#: in the integer layer, where it is transparent).
NO_PUSH = -1

#: A second driver is named in the sentence only at this share of the first's size.
SECOND_DRIVER_SHARE = 0.25


@dataclass(frozen=True)
class Explanation:
    """Additive explanation of ``n`` predictions: ``baseline + contributions.sum(1)``.

    ``contributions`` is (n, len(feature_names)), in ``feature_names`` order and
    in ``unit`` (the prediction's unit; for a probability see the predictor's
    docstring for how log-odds contributions are rescaled).
    """

    baseline: np.ndarray
    contributions: np.ndarray
    unit: str
    feature_names: tuple[str, ...]

    @property
    def prediction(self) -> np.ndarray:
        """What the contributions add up to: the model's prediction."""
        return np.asarray(self.baseline + self.contributions.sum(axis=1))

    def row(self, index: int) -> dict[str, Any]:
        """One row as JSON-ready values: ``{"baseline", "contributions": {feature: value}}``."""
        values = self.contributions[index].tolist()
        return {
            "baseline": float(self.baseline[index]),
            "contributions": dict(zip(self.feature_names, values, strict=True)),
        }


@dataclass(frozen=True)
class Driver:
    """One driver: how it is named on a map, its colour, how a sentence says it."""

    key: str
    label: str
    colour: str
    up: str
    """What pushes the prediction up, as a sentence says it ("little greenery")."""
    down: str
    """What pushes it down ("greenery and shade")."""
    ranked: bool = True
    """False for a driver that is the same everywhere in a scene (the day's reference)."""


@dataclass(frozen=True)
class ServiceDrivers:
    """A service's drivers, which feature belongs to which, and its direction words."""

    drivers: tuple[Driver, ...]
    features: Mapping[str, str]
    """feature name → driver key."""
    up_word: str
    down_word: str

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(d.key for d in self.drivers)

    def driver(self, key: str) -> Driver:
        return next(d for d in self.drivers if d.key == key)


_UHI = ServiceDrivers(
    drivers=(
        Driver("vegetation", "Vegetation", "#1a9850", "little greenery", "greenery and shade"),
        Driver(
            "built",
            "Built form and albedo",
            "#7f2704",
            "sealed, built-up surroundings",
            "open, unsealed ground",
        ),
        Driver("water", "Water", "#2166ac", "distance from water", "nearby water"),
        Driver("terrain", "Terrain", "#8c6d31", "the terrain", "the terrain"),
        Driver(
            "reference",
            "The day's reference",
            "#762a83",
            "a day warmer than usual",
            "a day cooler than usual",
            ranked=False,
        ),
    ),
    features={
        "ndvi": "vegetation",
        "tree_cover": "vegetation",
        "tree_cover_200m": "vegetation",
        "building_density": "built",
        "ndbi": "built",
        "albedo": "built",
        "imperviousness": "built",
        "imperviousness_500m": "built",
        "water_distance": "water",
        "water_fraction": "water",
        "elevation": "terrain",
        "slope": "terrain",
        "reference_temperature": "reference",
    },
    up_word="Hot",
    down_word="Cool",
)

_FLOOD = ServiceDrivers(
    drivers=(
        Driver("storm", "Storm", "#3f007d", "heavy rain", "light rain"),
        Driver(
            "sealing",
            "Sealing and land cover",
            "#7f2704",
            "sealed ground",
            "permeable ground",
        ),
        Driver("terrain", "Terrain", "#8c6d31", "low-lying terrain", "high ground"),
        Driver(
            "drainage",
            "River and catchment",
            "#2166ac",
            "a large or sealed catchment draining past it",
            "a small catchment upstream",
        ),
    ),
    features={
        "rainfall_mm": "storm",
        "imperviousness": "sealing",
        "curve_number": "sealing",
        "hand": "terrain",
        "elevation": "terrain",
        "slope": "terrain",
        "depression_depth": "terrain",
        "river_distance": "drainage",
        "upstream_area": "drainage",
        "drainage_upstream_area": "drainage",
        "drainage_curve_number": "drainage",
    },
    up_word="Flood-prone",
    down_word="Unlikely to flood",
)

#: Each service's drivers (legend order = layer order = dominant-driver codes).
SERVICE_DRIVERS: dict[str, ServiceDrivers] = {"uhi": _UHI, "flood": _FLOOD}

#: feature → driver name, per service.
DRIVER_GROUPS: dict[str, dict[str, str]] = {
    name: dict(spec.features) for name, spec in SERVICE_DRIVERS.items()
}


def service_drivers(service: str) -> ServiceDrivers:
    """The drivers of ``service``; a service without them cannot be explained."""
    try:
        return SERVICE_DRIVERS[service]
    except KeyError:
        raise ValueError(
            f"service {service!r} has no explanation drivers "
            f"(known: {', '.join(sorted(SERVICE_DRIVERS))})"
        ) from None


def contribution_unit(prediction_unit: str) -> str:
    """The unit of a contribution: a difference of °C is a kelvin, other units stay."""
    return "K" if prediction_unit in ("°C", "degC", "celsius") else prediction_unit


def driver_contributions(
    contributions: np.ndarray, feature_names: Sequence[str], service: str
) -> tuple[tuple[str, ...], np.ndarray]:
    """Feature contributions (n, F) summed into the service's drivers: (keys, (n, D)).

    Every feature must belong to a driver, so the driver sums keep the
    explanation additive (nothing silently dropped).
    """
    values = np.asarray(contributions, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(feature_names):
        raise ValueError(
            f"contributions of shape {values.shape} do not match {len(feature_names)} features"
        )
    keys, membership = _membership(service, tuple(feature_names))
    return keys, values @ membership


@lru_cache(maxsize=64)
def _membership(service: str, feature_names: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """(driver keys, (features, drivers) 0/1 matrix): built once per model's feature list
    (a point request would otherwise rebuild it on every call)."""
    spec = service_drivers(service)
    unknown = [n for n in feature_names if n not in spec.features]
    if unknown:
        raise ValueError(f"{service} has no driver for {', '.join(unknown)}")
    membership = np.zeros((len(feature_names), len(spec.drivers)))
    keys = spec.keys
    for i, name in enumerate(feature_names):
        membership[i, keys.index(spec.features[name])] = 1.0
    membership.flags.writeable = False  # shared between calls
    return keys, membership


def ranked_mask(service: str) -> np.ndarray:
    """Which of the service's drivers (in legend order) take part in the dominant-driver rule."""
    return np.array([d.ranked for d in service_drivers(service).drivers], dtype=bool)


def dominant_driver(driver_values: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """Per row, the index of the ranked driver with the largest positive push, else NO_PUSH.

    Rows with any non-finite driver value (no data) get NO_PUSH too.
    """
    values = np.asarray(driver_values, dtype=np.float64)
    candidates = np.where(ranked[np.newaxis, :], values, -np.inf)
    with np.errstate(invalid="ignore"):
        best = np.argmax(np.nan_to_num(candidates, nan=-np.inf), axis=1)
        top = np.take_along_axis(candidates, best[:, np.newaxis], axis=1)[:, 0]
        pushes = (top > 0) & np.isfinite(values).all(axis=1)
    return np.where(pushes, best, NO_PUSH).astype(np.int64)


def dominant_one(driver_values: Sequence[float], ranked: Sequence[bool]) -> int:
    """:func:`dominant_driver` of one row, in plain Python (a point request: numpy's
    per-call set-up would cost more than the rule itself)."""
    best, top = NO_PUSH, 0.0
    if not all(math.isfinite(v) for v in driver_values):
        return NO_PUSH
    for index, (value, counts) in enumerate(zip(driver_values, ranked, strict=True)):
        if counts and value > top:  # strictly: the first of equal pushes, as argmax
            best, top = index, value
    return best


def _signed(value: float, unit: str) -> str:
    """``+2.1 K`` / ``−0.08 probability``: one decimal for temperatures, two otherwise."""
    digits = 1 if unit == "K" else 2
    text = f"{abs(value):.{digits}f}"
    sign = "+" if value >= 0 else "−"
    return f"{sign}{text} {unit}"


def explain_sentence(service: str, driver_values: Sequence[float], unit: str) -> str:
    """One plain sentence for one cell from its driver contributions (legend order).

    e.g. ``Hot mostly because of sealed, built-up surroundings, +2.1 K, and
    little greenery, +1.3 K.`` — see the module doc for the rule. ``unit`` is the
    contributions' unit (:func:`contribution_unit`).
    """
    spec = service_drivers(service)
    values = np.asarray(driver_values, dtype=np.float64)
    if values.shape != (len(spec.drivers),) or not np.isfinite(values).all():
        raise ValueError(f"expected {len(spec.drivers)} finite driver values, got {values!r}")
    ranked = [(d, float(v)) for d, v in zip(spec.drivers, values, strict=True) if d.ranked]
    total = sum(v for _, v in ranked)
    up = total >= 0
    pushing = sorted((dv for dv in ranked if (dv[1] > 0) == up and dv[1] != 0), key=_size)
    if not pushing:
        sentence = "About typical: no driver moves it"
    else:
        named = [pushing[0]]
        if len(pushing) > 1 and abs(pushing[1][1]) >= SECOND_DRIVER_SHARE * abs(pushing[0][1]):
            named.append(pushing[1])
        reasons = ", and ".join(
            f"{d.up if v > 0 else d.down}, {_signed(v, unit)}" for d, v in named
        )
        sentence = f"{spec.up_word if up else spec.down_word} mostly because of {reasons}"
    day = [(d, float(v)) for d, v in zip(spec.drivers, values, strict=True) if not d.ranked]
    for driver, value in day:
        if abs(value) >= 0.05:
            sentence += f"; {driver.up if value > 0 else driver.down} adds {_signed(value, unit)}"
    return sentence + "."


def explanation_json(explanation: Explanation, service: str, index: int) -> dict[str, Any]:
    """One row's explanation for an API answer or a map click: the features' contributions,
    the drivers' (a waterfall's bars, legend order), the dominant driver and the sentence."""
    row = explanation.row(index)
    unit = contribution_unit(explanation.unit)
    names = explanation.feature_names
    keys, drivers = driver_contributions(
        explanation.contributions[index : index + 1], names, service
    )
    values = drivers[0]
    spec = service_drivers(service)
    dominant = dominant_one(values.tolist(), [d.ranked for d in spec.drivers])
    return {
        **row,
        "unit": unit,
        "drivers": [
            {"driver": key, "label": spec.driver(key).label, "contribution": float(value)}
            for key, value in zip(keys, values, strict=True)
        ],
        "dominant_driver": keys[dominant] if dominant != NO_PUSH else None,
        "sentence": explain_sentence(service, values, unit),
    }


def _size(driver_value: tuple[Driver, float]) -> float:
    return -abs(driver_value[1])


def driver_legend(service: str) -> list[dict[str, Any]]:
    """The dominant-driver legend, in a stable order: code, key, label, colour.

    Code ``i + 1`` is driver ``i`` of :func:`service_drivers` (``dominant_driver
    + 1``); code 0 is a cell that no ranked driver pushes up.
    """
    spec = service_drivers(service)
    nothing = {"code": 0, "key": "none", "label": "Nothing here pushes it up", "colour": "#d9d9d9"}
    return [nothing] + [
        {"code": i + 1, "key": d.key, "label": d.label, "colour": d.colour}
        for i, d in enumerate(spec.drivers)
        if d.ranked
    ]


#: Dominant-driver agreement between two models of the same recipe trained with different
#: seeds on the same cities, on cities neither saw (``bench/explain_stability.py``).
MEASURED_STABILITY: dict[str, str] = {
    "uhi": "Stability: two models of this recipe trained with different seeds on the same four "
    "synthetic cities named the same dominant driver on 94.9 % of 20,808 cells of two cities "
    "neither saw (93.1 % dense, 96.7 % sprawl; BENCHMARKS.md, 2026-12-07).",
}


def explanation_card_section(service: str, feature_names: Sequence[str]) -> list[str]:
    """The model card's "Explanations" section: what the drivers are, how stable they are."""
    if service not in SERVICE_DRIVERS:
        return []
    spec = SERVICE_DRIVERS[service]
    members = {
        d.key: ", ".join(f"`{f}`" for f in feature_names if spec.features.get(f) == d.key)
        for d in spec.drivers
    }
    lines = [
        "## Explanations",
        "",
        "Each prediction can be explained (`?explain=true` on the predict routes, "
        "`terraops predict-raster ... --explain` for maps): TreeSHAP contributions of every "
        "input in the prediction's unit, which add up with the baseline to the prediction. "
        "They are summed into drivers; a map's dominant driver is the one that pushes a "
        "cell's prediction up the most.",
        "",
        *[f"- {d.label}: {members[d.key]}" for d in spec.drivers],
        "",
    ]
    if service in MEASURED_STABILITY:
        lines += [MEASURED_STABILITY[service], ""]
    return lines


def hex_rgba(colour: str) -> tuple[int, int, int, int]:
    """``#rrggbb`` → (r, g, b, 255), for a raster's colour table."""
    text = colour.lstrip("#")
    return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16), 255)

"""The calibrated-uncertainty artifact of a model version: written at training, read to serve.

It lives next to the booster in the MLflow pyfunc model folder (the artifact
``uncertainty``, a folder) and is described in the model's terraops metadata
(``metadata.terraops.uncertainty``), so it travels with the version through
the registry and the model cache:

- ``calibration.npz``: the conformal scores (pooled and per cell class), the
  area of applicability's bounded sample of training cells and its scaling;
- ``calibration.json``: the kept variant, why, and the comparison on
  held-out cities (what the card shows);
- ``difficulty.lgb``: the model of ``|residual|`` that scales the intervals;
- ``member_NN.lgb``: the leave-one-city-out models (a what-if Δ's spread and,
  for the ``cv_plus`` variant, the centres of the interval);
- for ``cv_plus``, in ``calibration.npz``: every calibration score with the
  member that produced it and its cell class (``cvplus_*``; ``cvplus_rules``:
  the fewest scores and cities a class needs, and whether cities are balanced);
- for city-balanced Mondrian scores, their weights (``weights_pooled``,
  ``weights_class_N``; absent: every score counts one).

Versions trained before this artifact existed have none: their predictor
says so (:attr:`UncertaintyModel` absent) and nothing invents a band.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from terraops.adapters import atomic
from terraops.domain.conformal import CvPlusScores
from terraops.domain.uncertainty import (
    CELL_CLASSES,
    ApplicabilityDomain,
    ConformalScores,
    cell_classes,
    check_level,
    difficulty_inputs,
    with_city_term,
)

ARTIFACT = "uncertainty"
"""The pyfunc artifact (a folder) holding the calibration."""
_ARRAYS = "calibration.npz"
_REPORT = "calibration.json"
_DIFFICULTY = "difficulty.lgb"


@dataclass
class UncertaintyModel:
    """What a predictor needs to give an interval and an applicability flag.

    ``difficulty`` maps feature rows (the model's full feature order) to the
    expected ``|residual|`` (floored, never ≤ 0); ``members`` predict like the
    model itself, one per held-out city.
    """

    feature_names: tuple[str, ...]
    scores: ConformalScores
    domain: ApplicabilityDomain
    difficulty: Callable[[np.ndarray], np.ndarray]
    members: list[Callable[[np.ndarray], np.ndarray]]
    report: dict[str, Any]
    cv_plus: CvPlusScores | None = None

    @property
    def variant(self) -> str:
        return self.scores.variant

    def claimed(self, X: np.ndarray) -> np.ndarray:
        """Whether a row's land-cover class gets an interval at all: not those the
        calibration found no variant could calibrate on held-out cities
        (``classes_without_interval`` in the report; none for older versions)."""
        skipped = [CELL_CLASSES.index(n) for n in self.report.get("classes_without_interval", [])]
        return ~np.isin(cell_classes(X, self.feature_names), skipped)

    def bounds(
        self, X: np.ndarray, level: float, centre: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) per row at ``level``, whatever :meth:`claimed` says: around
        ``centre`` (the served model's prediction) for split-conformal variants; from
        the members' predictions for ``cv_plus``."""
        if self.cv_plus is None:
            half = self.half_width(X, level)
            return centre - half, centre + half
        level = check_level(level)
        predictions = np.vstack([member(X) for member in self.members])
        classes = cell_classes(X, self.feature_names)
        return self.cv_plus.bounds(level, predictions, self.difficulty(X), classes)

    def half_width(self, X: np.ndarray, level: float) -> np.ndarray:
        """Half the interval width per row at ``level`` (inside the domain or not)."""
        level = check_level(level)
        classes = cell_classes(X, self.feature_names)
        if self.variant == "local":
            neighbours = self.domain.neighbour_residuals(X)
            return self.scores.half_width(level, np.ones(len(X)), classes, neighbours)
        return self.scores.half_width(level, self.difficulty(X), classes)

    def warm(self, required: Sequence[str]) -> None:
        """Build the applicability geometry of full rows and of required-only rows now,
        so that the first request of either kind does not pay for it."""
        names = list(self.feature_names)
        for given in (names, list(required)):
            self.domain.subspace(np.array([n in given for n in names]))


def save_uncertainty(
    folder: Path,
    *,
    scores: ConformalScores,
    domain: ApplicabilityDomain,
    difficulty_booster: Any | None,
    difficulty_floor: float,
    members: Sequence[Any],
    report: dict[str, Any],
    difficulty_city_term: np.ndarray | None = None,
    baseline_column: int | None = None,
    cv_plus: CvPlusScores | None = None,
) -> Path:
    """Write the artifact folder (created) from the fitted parts; return it.

    ``difficulty_city_term``: ``τ`` per stratum (day's reference missing, given)
    of the ``mondrian_city`` variant; ``baseline_column``: the feature the
    difficulty model sees only as given-or-not (see
    :func:`terraops.domain.uncertainty.difficulty_inputs`)."""
    folder.mkdir(parents=True, exist_ok=True)
    column = -1 if baseline_column is None else baseline_column
    arrays = {
        "scores_pooled": scores.pooled,
        "difficulty_floor": np.array([difficulty_floor]),
        "difficulty_baseline_column": np.array([column]),
        **{f"scores_class_{code}": values for code, values in scores.per_class.items()},
        **{f"weights_class_{code}": values for code, values in scores.class_weights.items()},
        **domain.arrays(),
    }
    if scores.pooled_weights is not None:
        arrays["weights_pooled"] = scores.pooled_weights
    if difficulty_city_term is not None:
        arrays["difficulty_city_term"] = np.asarray(difficulty_city_term, dtype=np.float64)
    if cv_plus is not None:
        arrays["cvplus_scores"] = np.asarray(cv_plus.scores, dtype=np.float64)
        arrays["cvplus_member"] = np.asarray(cv_plus.member, dtype=np.int16)
        arrays["cvplus_class"] = np.asarray(cv_plus.classes, dtype=np.int8)
        arrays["cvplus_rules"] = np.array(
            [cv_plus.min_scores, cv_plus.min_cities, int(cv_plus.balanced)]
        )
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    atomic.atomic_write_bytes(folder / _ARRAYS, buffer.getvalue())
    if difficulty_booster is not None:
        difficulty_booster.save_model(str(folder / _DIFFICULTY))
    for k, member in enumerate(members):
        member.save_model(str(folder / f"member_{k:02d}.lgb"))
    payload = {**report, "variant": scores.variant, "members": len(members)}
    atomic.atomic_write_json(folder / _REPORT, payload, default=_plain)
    return folder


def _plain(value: Any) -> Any:
    """JSON for numpy scalars in a report."""
    return value.item() if hasattr(value, "item") else str(value)


def load_uncertainty(
    folder: Path,
    feature_names: Sequence[str],
    member_predictor: Callable[[Path], Callable[[np.ndarray], np.ndarray]],
) -> UncertaintyModel:
    """Read the artifact folder; ``member_predictor`` loads one member booster file."""
    with np.load(folder / _ARRAYS) as stored:
        arrays = {key: stored[key] for key in stored.files}
    report = json.loads((folder / _REPORT).read_text(encoding="utf-8"))
    per_class = {
        code: arrays[f"scores_class_{code}"]
        for code in range(len(CELL_CLASSES))
        if f"scores_class_{code}" in arrays
    }
    scores = ConformalScores(
        str(report["variant"]),
        arrays["scores_pooled"],
        per_class,
        arrays.get("weights_pooled"),
        {
            code: arrays[f"weights_class_{code}"]
            for code in per_class
            if f"weights_class_{code}" in arrays
        },
    )
    domain = ApplicabilityDomain.from_arrays(feature_names, arrays)
    difficulty = _difficulty(folder, arrays)
    members = [member_predictor(path) for path in sorted(folder.glob("member_*.lgb"))]
    cv_plus = None
    if "cvplus_scores" in arrays:  # versions calibrated before CV+ have none
        rules = [int(v) for v in arrays["cvplus_rules"]]  # older: no balancing flag
        cv_plus = CvPlusScores(
            arrays["cvplus_scores"],
            arrays["cvplus_member"],
            arrays["cvplus_class"],
            len(members),
            rules[0],
            rules[1],
            balanced=len(rules) > 2 and bool(rules[2]),
        )
    return UncertaintyModel(
        tuple(feature_names), scores, domain, difficulty, members, report, cv_plus
    )


def _difficulty(folder: Path, arrays: dict[str, np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """The stored difficulty as a function of feature rows (all ones when none is kept).

    Rows go through the same :func:`difficulty_inputs` as at calibration, and
    the city term (when kept) is added in variance, per whether the day's
    reference is given.
    """
    import lightgbm as lgb  # heavy: loaded only when a calibrated model is

    if not (folder / _DIFFICULTY).is_file():
        return lambda X: np.ones(len(np.atleast_2d(X)))
    booster = lgb.Booster(model_file=str(folder / _DIFFICULTY))
    floor = float(arrays["difficulty_floor"][0])
    column = int(arrays.get("difficulty_baseline_column", np.array([-1]))[0])
    tau = arrays.get("difficulty_city_term")

    def difficulty(X: np.ndarray) -> np.ndarray:
        rows = difficulty_inputs(X, column)
        spread = np.maximum(np.asarray(booster.predict(rows, num_threads=1), np.float64), floor)
        if tau is None:
            return spread
        given = np.ones(len(rows), np.int64) if column < 0 else rows[:, column].astype(np.int64)
        return with_city_term(spread, tau, given)

    return difficulty

"""The ``cv_plus`` interval variant at training: its served scores and its honest comparison.

Served (:func:`fit_cv_plus`): every calibration cell's score is its
leave-one-city-out residual over the cross-fitted city difficulty, kept with
the member (held-out city) that produced it; a new cell's interval is built
from each member's prediction at it (:mod:`terraops.domain.conformal`), per
land-cover class, every city weighing the same within a class (city-balanced).

Compared (:class:`PairModels`): the other variants are measured with each
city ``g`` held out in turn, its cells predicted by the member that never saw
it and calibrated on the other cities' residuals. CV+ needs its members not to
have seen ``g`` either, so for each pair of cities a model is fitted without
both (``K(K−1)/2`` fits on the same examples and settings as the members): the
held-out city's interval comes from the models without ``g`` and each other
city ``k``, and the scores of ``k``'s cells from the same model. Above
:data:`MAX_PAIR_CITIES` cities that costs too much and CV+ is not compared
(the record says so).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from terraops.domain.conformal import CvPlusScores
from terraops.domain.uncertainty import MIN_CLASS_CITIES, MONDRIAN_MIN_SCORES
from terraops.pipelines.training.cross_validation import fit_final_model, predict
from terraops.services.base import ServiceDefinition

#: Most cities for which the pairwise models of the comparison are fitted.
MAX_PAIR_CITIES = 8


def fit_cv_plus(
    abs_residual: np.ndarray, difficulty: np.ndarray, group: np.ndarray, classes: np.ndarray
) -> CvPlusScores:
    """The served CV+ scores: ``|residual| / difficulty`` per cell, by member and class."""
    return CvPlusScores(
        abs_residual / difficulty,
        group,
        classes,
        int(group.max()) + 1,
        MONDRIAN_MIN_SCORES,
        MIN_CLASS_CITIES,
        balanced=True,
    )


@dataclass
class PairModels:
    """Models fitted without two cities each, predicting the calibration rows on demand."""

    service: ServiceDefinition
    examples: pd.DataFrame
    X: np.ndarray  # the calibration rows (every cell twice: all features; required only)
    group: np.ndarray  # their city code
    names: list[str]
    fit: Callable[[np.ndarray], Any]  # example rows → fitted model
    _cache: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    def predictions(self, g: int, k: int) -> np.ndarray:
        """The prediction of every calibration row of cities ``g`` and ``k`` (NaN elsewhere)
        by the model that saw neither."""
        key = (min(g, k), max(g, k))
        if key not in self._cache:
            cities = self.group[: len(self.examples)]
            model = self.fit(np.flatnonzero((cities != g) & (cities != k)))
            rows = np.isin(self.group, key)
            out = np.full(len(self.group), np.nan)
            out[rows] = predict(self.service, model, self.X[rows], self.names)
            self._cache[key] = out
        return self._cache[key]

    def bounds(
        self,
        g: int,
        y: np.ndarray,
        classes: np.ndarray,
        difficulty: np.ndarray,
        level: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """CV+ (lower, upper) of city ``g``'s rows, calibrated on the other cities.

        ``difficulty``: every row's (the other cities' cross-fitted without ``g``;
        ``g``'s from a fit on the others)."""
        test = self.group == g
        others = [int(k) for k in np.unique(self.group) if k != g]
        members = np.vstack([self.predictions(g, k)[test] for k in others])
        scores, member = [], []
        for index, k in enumerate(others):
            rows = self.group == k
            scores.append(np.abs(y[rows] - self.predictions(g, k)[rows]) / difficulty[rows])
            member.append(np.full(int(rows.sum()), index))
        calibration = CvPlusScores(
            np.concatenate(scores),
            np.concatenate(member),
            np.concatenate([classes[self.group == k] for k in others]),
            len(others),
            MONDRIAN_MIN_SCORES,
            MIN_CLASS_CITIES,
            balanced=True,
        )
        return calibration.bounds(level, members, difficulty[test], classes[test])


def pair_models(
    service: ServiceDefinition,
    examples: pd.DataFrame,
    X: np.ndarray,
    group: np.ndarray,
    params: Mapping[str, Any] | None,
    training: Mapping[str, Any] | None,
) -> PairModels | None:
    """The pairwise models of the comparison (None: not given the training settings,
    fewer than three cities, or more than :data:`MAX_PAIR_CITIES`)."""
    n_cities = len(np.unique(group))
    if params is None or training is None or not 3 <= n_cities <= MAX_PAIR_CITIES:
        return None

    def fit(rows: np.ndarray) -> Any:
        subset = examples.iloc[rows].reset_index(drop=True)
        return fit_final_model(service, subset, params, training)

    return PairModels(service, examples, X, group, list(service.feature_names), fit)

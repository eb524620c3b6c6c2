"""K-fold CV+ intervals with cities as folds (pure, no I/O).

Barber, Candès, Ramdas & Tibshirani (2021), "Predictive inference with the
jackknife+", the K-fold CV+ variant. Split conformal centres the interval on
the served model and sizes it with residuals of the leave-one-city-out
*members*; but a member saw one city fewer than the served model and errs
more, so the band comes out too wide on a new city. CV+ instead centres each
calibration score on the member that produced it: with ``μ₋ₖ`` the member
that never saw city ``k`` and ``Rᵢ`` the (difficulty-normalised) score of a
cell ``i`` of city ``k``,

- lower = the ``⌊α(n+1)⌋``-th smallest of ``{μ₋ₖ₍ᵢ₎(x) − d(x)·Rᵢ}``,
- upper = the ``⌈(1−α)(n+1)⌉``-th smallest of ``{μ₋ₖ₍ᵢ₎(x) + d(x)·Rᵢ}``,

which covers with probability ≥ ``1 − 2α`` for exchangeable data whatever the
model (≈ ``1 − α`` in practice). Per Mondrian class where the class has
enough scores from enough cities (:class:`CvPlusScores`), else over all.

*City-balanced* (``balanced=True``): within a score set every member (held-out
city) weighs the same, each of its scores ``n / (K·nₖ)`` (the weights still sum
to ``n``, so the ranks above keep their meaning). The city is the exchangeable
unit: a city with many cells of a class should not set that class's band alone,
nor a city with few be drowned (the pooled-CDF estimator of Dunn, Wasserman &
Ramdas 2022 for two-layer data). With equal weights it is the plain count.

The order statistic of the union of ``K`` shifted sorted score sets is found
by bisection on the value, counting with one ``searchsorted`` per step over a
single array holding every member's scores side by side (each member's block
shifted past the previous one), so a point request costs a few dozen small
numpy calls whatever the number of calibration cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: Up to this many order statistics (two per row: lower, upper) are selected exactly, one by one;
#: more are searched together.
EXACT_ROWS = 16
#: The vectorised search stops when the bracket is this narrow (in the prediction's unit)
#: and returns its upper end: the bound is at most this much wider than the exact one.
TOLERANCE = 5e-3
#: Its steps at most (each step moves an end of every open bracket).
MAX_SEARCH_STEPS = 60
#: City-balanced scores are selected exactly by sorting those inside the bracket,
#: narrowed first by this many search steps (a point request's bracket holds most
#: scores, since the members' predictions differ).
NARROW_STEPS = 5


@dataclass(frozen=True)
class _ScoreSet:
    """Every member's sorted scores in one array, member ``k``'s block offset by ``k·span``."""

    blocks: np.ndarray
    starts: np.ndarray  # (K,) first index of each member's block
    sizes: np.ndarray  # (K,) scores per member
    low: float  # smallest score
    span: float  # larger than the range of the scores
    weights: np.ndarray  # (K,) each of member k's scores counts this much (sum: n)
    unit: bool  # every score counts one (no city balancing)

    @classmethod
    def of(cls, per_member: list[np.ndarray], balanced: bool = False) -> _ScoreSet:
        values = [np.sort(np.asarray(s, dtype=np.float64)) for s in per_member]
        every = np.concatenate(values) if values else np.empty(0)
        low = float(every.min()) if len(every) else 0.0
        span = (float(every.max()) - low if len(every) else 0.0) + 1.0
        sizes = np.array([len(v) for v in values], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        blocks = np.concatenate(
            [v - low + k * span for k, v in enumerate(values)] if values else [np.empty(0)]
        )
        weights = member_weights(sizes, balanced)
        unit = bool(np.all(weights[sizes > 0] == 1.0))
        return cls(blocks, starts, sizes, low, span, weights, unit)

    @property
    def n(self) -> int:
        return int(self.sizes.sum())

    def quantile_of_member(self, k: int, fraction: float) -> float:
        """The score at ``fraction`` of member ``k``'s sorted scores (NaN if it has none)."""
        if self.sizes[k] == 0:
            return math.nan
        index = min(max(math.ceil(fraction * self.sizes[k]) - 1, 0), self.sizes[k] - 1)
        return float(self.blocks[self.starts[k] + index] - k * self.span + self.low)

    def count_at_most(
        self, threshold: np.ndarray, shift: np.ndarray, scale: np.ndarray
    ) -> np.ndarray:
        """``#{(k, s): shift[k] + scale·s ≤ threshold}`` per row (shift ``(K, m)``)."""
        relative = (threshold[None, :] - shift) / scale[None, :] - self.low
        relative = np.clip(relative, -0.25, self.span - 0.75)
        offsets = np.arange(len(self.sizes))[:, None] * self.span
        below = np.searchsorted(self.blocks, (relative + offsets).ravel(), side="right")
        counts = below.reshape(shift.shape) - self.starts[:, None]
        total: np.ndarray = (counts * self.weights[:, None]).sum(axis=0)
        return total

    def _bracket(self, rank: int, shift: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(lo, hi)`` per row with ``count(lo) < rank ≤ count(hi)``: the smallest and
        largest of the members' own ``rank/n`` quantiles, shifted (see the module)."""
        fraction = rank / self.n
        index = np.ceil(fraction * self.sizes).astype(np.int64) - 1
        index = np.clip(index, 0, np.maximum(self.sizes - 1, 0))
        has = self.sizes > 0
        own = self.blocks[(self.starts + index)[has]] - np.flatnonzero(has) * self.span + self.low
        candidates = shift[has] + scale[None, :] * own[:, None]
        lo, hi = candidates.min(axis=0), candidates.max(axis=0)
        # a margin past rounding: (t − shift) / scale need not give the score back exactly
        return lo - 1e-9 * (1.0 + np.abs(lo)), hi + 1e-9 * (1.0 + np.abs(hi))

    def _exact(self, rank: int, shift: np.ndarray, scale: float, lo: float, hi: float) -> float:
        """The order statistic of one row: the scores between the bracket, selected."""
        members = np.arange(len(self.sizes))
        ends = np.array([lo, hi])[:, None]
        relative = np.clip((ends - shift[None, :]) / scale - self.low, -0.25, self.span - 0.75)
        first, last = np.searchsorted(self.blocks, relative + members * self.span, side="right")
        below = float(((first - self.starts) * self.weights).sum())
        values = [
            shift[k] + scale * (self.blocks[first[k] : last[k]] - k * self.span + self.low)
            for k in members
            if last[k] > first[k]
        ]
        between = np.concatenate(values)
        if self.unit:
            need = rank - round(below) - 1
            return float(np.partition(between, need)[need])
        weight = np.concatenate(
            [np.full(last[k] - first[k], self.weights[k]) for k in members if last[k] > first[k]]
        )
        order = np.argsort(between, kind="stable")
        reached = below + np.cumsum(weight[order])
        index = min(int(np.searchsorted(reached, rank - 1e-9 * rank)), len(order) - 1)
        return float(between[order][index])

    def order_statistic(self, rank: int, shift: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """The ``rank``-th smallest of ``{shift[k] + scale·s}`` per row (shift ``(K, m)``);
        ``inf`` when ``rank`` exceeds ``n``. A few rows: exact (selection between the
        bracket); many: interpolation search to within :data:`TOLERANCE`, from above."""
        m = shift.shape[1]
        if rank > self.n or m == 0:
            return np.full(m, np.inf)
        lo, hi = self._bracket(rank, shift, scale)
        if m <= EXACT_ROWS:
            if not self.unit:  # a weighted selection sorts: first shrink what it sorts
                lo, hi = self._narrow(rank, shift, scale, lo, hi, NARROW_STEPS, 0.0)
            return np.array(
                [self._exact(rank, shift[:, j], scale[j], lo[j], hi[j]) for j in range(m)]
            )
        return self._narrow(rank, shift, scale, lo, hi, MAX_SEARCH_STEPS, TOLERANCE)[1]

    def _narrow(
        self,
        rank: int,
        shift: np.ndarray,
        scale: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        steps: int,
        tolerance: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The bracket ``(lo, hi]`` of the order statistic, narrowed by at most ``steps``
        steps or until ``tolerance`` wide; ``count(lo) < rank ≤ count(hi)`` throughout."""
        m = shift.shape[1]
        # Illinois (regula falsi that halves a retained end's weight): on the count
        # f(t) = #{≤ t} − rank + ½ (weighted: + a hair), negative at lo, positive at hi.
        target = rank - (0.5 if self.unit else 1e-9 * rank)
        f_lo = self.count_at_most(lo, shift, scale) - target
        f_hi = self.count_at_most(hi, shift, scale) - target
        kept = np.zeros(m, dtype=np.int8)  # +1: hi was kept last step, −1: lo was
        for _ in range(steps):
            open_ = hi - lo > tolerance
            if not open_.any():
                break
            share = np.clip(-f_lo / (f_hi - f_lo), 0.01, 0.99)
            mid = lo + share * (hi - lo)
            f_mid = self.count_at_most(mid, shift, scale) - target
            enough = (f_mid > 0) & open_
            short = ~enough & open_
            f_lo = np.where(enough & (kept == -1), 0.5 * f_lo, f_lo)
            f_hi = np.where(short & (kept == 1), 0.5 * f_hi, f_hi)
            hi, f_hi = np.where(enough, mid, hi), np.where(enough, f_mid, f_hi)
            lo, f_lo = np.where(short, mid, lo), np.where(short, f_mid, f_lo)
            kept = np.where(enough, -1, np.where(short, 1, kept)).astype(np.int8)
        return lo, hi


def member_weights(sizes: np.ndarray, balanced: bool) -> np.ndarray:
    """Weight of each score of member ``k`` (``sizes[k]`` scores): 1, or city-balanced
    ``n / (K·nₖ)`` over the ``K`` members that have any (see the module)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    has = sizes > 0
    if not balanced or not has.any():
        return np.ones(len(sizes))
    weights = np.zeros(len(sizes))
    weights[has] = sizes.sum() / (has.sum() * sizes[has])
    return weights


def cv_plus_rank(n: int, level: float) -> int:
    """``⌈level·(n + 1)⌉``: the rank of the upper bound among ``n`` scores."""
    return math.ceil(level * (n + 1) - 1e-9)


@dataclass(frozen=True)
class CvPlusScores:
    """The calibration of the ``cv_plus`` variant.

    ``scores[i]``: cell ``i``'s score under ``member[i]``, the member that never
    saw its city; ``classes[i]``: its cell class. A class keeps its own scores
    when it has ``min_scores`` of them from at least ``min_cities`` cities
    (``min_scores // 2`` cells each); else its cells use every class's scores.
    ``balanced``: every city weighs the same within a score set (see the module).
    The inputs are kept (they are what is stored); the sorted sets derive from them.
    """

    scores: np.ndarray
    member: np.ndarray
    classes: np.ndarray
    n_members: int
    min_scores: int
    min_cities: int
    balanced: bool = False
    pooled: _ScoreSet = field(init=False, repr=False)
    per_class: dict[int, _ScoreSet] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        scores = np.asarray(self.scores, dtype=np.float64)
        member = np.asarray(self.member, dtype=np.int64)
        classes = np.asarray(self.classes, dtype=np.int64)

        def split(pick: np.ndarray) -> list[np.ndarray]:
            return [scores[pick & (member == k)] for k in range(self.n_members)]

        every = split(np.ones(len(scores), bool))
        object.__setattr__(self, "pooled", _ScoreSet.of(every, self.balanced))
        per_class = {}
        for code in np.unique(classes):
            parts = split(classes == code)
            cities = sum(len(p) >= max(self.min_scores // 2, 1) for p in parts)
            if sum(len(p) for p in parts) >= self.min_scores and cities >= self.min_cities:
                per_class[int(code)] = _ScoreSet.of(parts, self.balanced)
        object.__setattr__(self, "per_class", per_class)

    def class_cities(self) -> dict[int, int]:
        """Per cell class: how many cities have ``min_scores // 2`` of its cells."""
        member, classes = np.asarray(self.member), np.asarray(self.classes)
        need = max(self.min_scores // 2, 1)
        return {
            int(code): sum(
                int(((classes == code) & (member == k)).sum()) >= need
                for k in range(self.n_members)
            )
            for code in np.unique(classes)
        }

    def bounds(
        self,
        level: float,
        member_predictions: np.ndarray,
        difficulty: np.ndarray,
        classes: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) per row; ``member_predictions`` is ``(K, n)``."""
        predictions = np.atleast_2d(np.asarray(member_predictions, dtype=np.float64))
        scale = np.asarray(difficulty, dtype=np.float64)
        n_rows = predictions.shape[1]
        lower, upper = np.empty(n_rows), np.empty(n_rows)
        classes = np.asarray(classes)
        groups = [(self.pooled, ~np.isin(classes, list(self.per_class)))]
        groups += [(s, classes == code) for code, s in self.per_class.items()]
        for score_set, pick in groups:
            if not pick.any():
                continue
            rank = cv_plus_rank(score_set.n, level)
            rows = np.flatnonzero(pick) if not pick.all() else slice(None)
            mu, d = predictions[:, rows], scale[rows]
            # upper: rank-th smallest of μ + d·R; lower: −(rank-th smallest of −μ + d·R)
            both = score_set.order_statistic(rank, np.hstack([mu, -mu]), np.concatenate([d, d]))
            half = both.shape[0] // 2
            upper[rows], lower[rows] = both[:half], -both[half:]
        return lower, upper

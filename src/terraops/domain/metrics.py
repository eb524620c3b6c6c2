"""Model-quality metrics, in plain numpy (the domain layer has no scikit-learn).

Regression: MAE (the headline: in kelvin it reads directly as "typical error
of the heat map"), RMSE (punishes the big misses planners notice), R², bias.
Binary (flood): ROC AUC (ranking), PR AUC / average precision (ranking when
floods are rare), Brier score (a proper scoring rule: rewards *calibrated*
probabilities, which is what a "probability of flooding" promises), its skill
against climatology, log loss and F1 at a decision threshold.

Tests compare each function with scikit-learn's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-12


def _as_arrays(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values, y_pred {p.size}")
    if t.size == 0:
        raise ValueError("no values to score")
    return t, p


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, R² and mean bias (prediction − truth)."""
    t, p = _as_arrays(y_true, y_pred)
    err = p - t
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan")
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": r2,
        "bias": float(np.mean(err)),
    }


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U with mid-ranks for ties)."""
    t, s = _as_arrays(y_true, score)
    pos = t > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata  # scipy.stats costs ~1 s of imports: only when ranking

    ranks = rankdata(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """PR AUC as average precision: Σ (Rₙ − Rₙ₋₁) Pₙ over distinct thresholds."""
    t, s = _as_arrays(y_true, score)
    pos = t > 0.5
    n_pos = int(pos.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, pos_sorted = s[order], pos[order]
    tp = np.cumsum(pos_sorted)
    # Evaluate only at the last row of each run of tied scores.
    last_of_tie = np.r_[np.diff(s_sorted) != 0, True]
    tp = tp[last_of_tie]
    predicted_pos = np.flatnonzero(last_of_tie) + 1
    precision = tp / predicted_pos
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def f1_at(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> float:
    """F1 of the decision ``prob ≥ threshold`` (0 when nothing is predicted or present)."""
    t, p = _as_arrays(y_true, prob)
    pos, pred = t > 0.5, p >= threshold
    tp = float(np.sum(pos & pred))
    denom = float(pos.sum() + pred.sum())
    return 2 * tp / denom if denom > 0 else 0.0


def binary_metrics(
    y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """Ranking, calibration and decision metrics of a probability forecast."""
    t, p = _as_arrays(y_true, prob)
    pos = (t > 0.5).astype(np.float64)
    brier = float(np.mean((p - pos) ** 2))
    base_rate = float(pos.mean())
    brier_climatology = base_rate * (1 - base_rate)
    clipped = np.clip(p, _EPS, 1 - _EPS)
    log_loss = float(-np.mean(pos * np.log(clipped) + (1 - pos) * np.log(1 - clipped)))
    return {
        "roc_auc": roc_auc(pos, p),
        "pr_auc": average_precision(pos, p),
        "brier": brier,
        "brier_skill": 1 - brier / brier_climatology if brier_climatology > 0 else float("nan"),
        "log_loss": log_loss,
        "f1": f1_at(pos, p, threshold),
    }


@dataclass(frozen=True)
class ReliabilityCurve:
    """Mean forecast vs observed frequency per probability bin (for the diagram)."""

    bin_edges: np.ndarray
    mean_predicted: np.ndarray  # NaN where a bin is empty
    observed_frequency: np.ndarray
    count: np.ndarray


def reliability_curve(y_true: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> ReliabilityCurve:
    """Bin forecasts into ``n_bins`` equal-width bins on [0, 1]."""
    t, p = _as_arrays(y_true, prob)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(idx, weights=p, minlength=n_bins) / count
        observed = np.bincount(idx, weights=(t > 0.5).astype(float), minlength=n_bins) / count
    return ReliabilityCurve(edges, mean_pred, observed, count)

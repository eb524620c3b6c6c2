"""Diagnostic plots of a training run, written as PNG files.

Uses ``matplotlib.figure.Figure`` directly (Agg canvas, no ``pyplot``): no
global backend state, no display needed, safe in servers and threads.
All plots show *spatial-CV* (out-of-block) predictions — the honest ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from terraops.domain.metrics import ReliabilityCurve

_DPI = 110


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    return path


def predicted_vs_observed(
    observed: np.ndarray, predicted: np.ndarray, path: Path, *, unit: str, title: str
) -> Path:
    """Hexbin density of predicted vs observed with the 1:1 line."""
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    lo = float(np.nanmin([observed.min(), predicted.min()]))
    hi = float(np.nanmax([observed.max(), predicted.max()]))
    hb = ax.hexbin(observed, predicted, gridsize=50, bins="log", mincnt=1, cmap="viridis")
    ax.plot([lo, hi], [lo, hi], color="crimson", lw=1, label="1:1")
    ax.set(xlabel=f"observed ({unit})", ylabel=f"predicted ({unit})", title=title)
    ax.legend(loc="upper left")
    fig.colorbar(hb, ax=ax, label="cells (log)")
    return _save(fig, path)


def residual_maps(
    x: np.ndarray,
    y: np.ndarray,
    residual: np.ndarray,
    scenes: np.ndarray,
    path: Path,
    *,
    unit: str,
) -> Path:
    """Residual (predicted − observed) at each cell, one panel per scene.

    Spatially clustered residuals are what random CV hides and block CV shows.
    """
    names = list(dict.fromkeys(scenes.tolist()))
    fig = Figure(figsize=(4.5 * len(names), 4.2))
    limit = float(np.nanpercentile(np.abs(residual), 98)) or 1.0
    for i, name in enumerate(names, start=1):
        ax = fig.add_subplot(1, len(names), i)
        m = scenes == name
        sc = ax.scatter(
            x[m],
            y[m],
            c=residual[m],
            s=4,
            marker="s",
            cmap="RdBu_r",
            vmin=-limit,
            vmax=limit,
            linewidths=0,
        )
        ax.set(title=f"{name}: residual", xlabel="x (m)", ylabel="y (m)", aspect="equal")
        fig.colorbar(sc, ax=ax, label=unit, shrink=0.8)
    return _save(fig, path)


def feature_importance(names: Sequence[str], gain: np.ndarray, path: Path) -> Path:
    """Share of total split gain per feature, largest first."""
    gain = np.asarray(gain, dtype=float)
    share = gain / gain.sum() if gain.sum() > 0 else gain
    order = np.argsort(share)
    fig = Figure(figsize=(6, 0.4 * len(names) + 1.2))
    ax = fig.add_subplot()
    ax.barh([names[i] for i in order], share[order], color="steelblue")
    ax.set(xlabel="share of split gain", title="Feature importance (final model)")
    return _save(fig, path)


def reliability_diagram(curve: ReliabilityCurve, path: Path, *, title: str) -> Path:
    """Observed frequency vs mean forecast per bin, with the forecast histogram."""
    fig = Figure(figsize=(5, 6))
    ax, hist = fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)
    ok = curve.count > 0
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfectly calibrated")
    ax.plot(curve.mean_predicted[ok], curve.observed_frequency[ok], "o-", label="model")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="mean predicted probability",
        ylabel="observed frequency",
        title=title,
    )
    ax.legend(loc="upper left")
    widths = np.diff(curve.bin_edges)
    hist.bar(curve.bin_edges[:-1], curve.count, width=widths, align="edge", color="steelblue")
    hist.set(yscale="log", xlabel="predicted probability", ylabel="rows")
    return _save(fig, path)


def learning_curve(
    epochs: Sequence[int], series: Mapping[str, Sequence[float]], path: Path, *, title: str
) -> Path:
    """Per-epoch curves: scores (0–1) on the left axis, the training loss on the right."""
    fig = Figure(figsize=(6.5, 3.8))
    ax = fig.add_subplot()
    loss = ax.twinx()
    for name, values in series.items():
        target = loss if "loss" in name else ax
        style = "--" if "loss" in name else "-"
        target.plot(epochs, values, style, marker=".", label=name)
    ax.set(xlabel="epoch", ylabel="score (held-out)", ylim=(0, 1), title=title)
    loss.set_ylabel("training loss")
    handles = ax.get_legend_handles_labels()
    more = loss.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], loc="center right")
    ax.grid(alpha=0.3)
    return _save(fig, path)

"""Figures of the case studies (``terraops report case-study``), written as small PNG files.

Like :mod:`terraops.adapters.plots`: ``matplotlib.figure.Figure`` on the Agg
canvas (no ``pyplot``, no global backend, no display). The functions take
plain arrays and shapely geometries already in map coordinates (km from the
scene's top-left corner), so what a figure shows is decided by the caller
and this module only draws and writes. Figures are kept small (≤ 300 KB):
maps are drawn at the model's cell resolution, PNGs at a modest DPI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from shapely.geometry.base import BaseGeometry

from terraops.adapters import atomic

_DPI = 90


@dataclass(frozen=True)
class Outline:
    """A polygon drawn over a map panel, with an optional label at its centre."""

    geometry: BaseGeometry
    label: str = ""
    colour: str = "black"


@dataclass(frozen=True)
class MapPanel:
    """One map: a continuous raster, a categorical one (``classes``) or an RGB image.

    ``extent`` is (left, right, bottom, top) in km; ``classes`` is
    ``[(code, label, colour)]`` for a categorical raster.
    """

    title: str
    data: np.ndarray
    extent: tuple[float, float, float, float]
    colormap: str = "viridis"
    value_range: tuple[float, float] | None = None
    label: str = ""
    classes: Sequence[tuple[int, str, str]] = ()
    outlines: Sequence[Outline] = field(default_factory=tuple)
    view: tuple[float, float, float, float] | None = None
    """(left, right, bottom, top) in km to zoom to; None: the whole extent."""


@dataclass(frozen=True)
class BarGroup:
    """One group of bars (an intervention, a storm): values with optional (low, high) whiskers."""

    name: str
    values: Sequence[float]
    intervals: Sequence[tuple[float, float] | None] = ()


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    with atomic.atomic_path(path, parents=True) as staging:
        fig.savefig(staging, dpi=_DPI, format="png")
    return path


def _draw_outlines(ax: Axes, outlines: Sequence[Outline]) -> None:
    for outline in outlines:
        geometry = outline.geometry
        parts = getattr(geometry, "geoms", [geometry])
        for part in parts:
            x, y = part.exterior.xy
            ax.plot(x, y, color=outline.colour, lw=1.2)
        if outline.label:
            point = geometry.representative_point()
            ax.annotate(
                outline.label,
                (point.x, point.y),
                color=outline.colour,
                fontsize=8,
                fontweight="bold",
                ha="center",
                va="center",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7},
            )


def _draw_panel(fig: Figure, ax: Axes, panel: MapPanel) -> None:
    kwargs: dict[str, Any] = {"extent": panel.extent, "interpolation": "nearest", "origin": "upper"}
    if panel.data.ndim == 3:
        ax.imshow(np.clip(panel.data, 0, 1), **kwargs)
    elif panel.classes:
        codes = [c[0] for c in panel.classes]
        cmap = ListedColormap([c[2] for c in panel.classes])
        bounds = [*[c - 0.5 for c in codes], codes[-1] + 0.5]
        masked = np.ma.masked_where(~np.isin(panel.data, codes), panel.data)
        norm = BoundaryNorm(bounds, cmap.N)
        ax.imshow(masked, cmap=cmap, norm=norm, **kwargs)
        handles = [Patch(color=c[2], label=c[1]) for c in panel.classes]
        ax.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.8)
    else:
        lo, hi = panel.value_range or (None, None)
        image = ax.imshow(
            np.ma.masked_invalid(panel.data), cmap=panel.colormap, vmin=lo, vmax=hi, **kwargs
        )
        fig.colorbar(image, ax=ax, label=panel.label, shrink=0.8)
    _draw_outlines(ax, panel.outlines)
    ax.set(title=panel.title, xlabel="km east", ylabel="km north")
    left, right, bottom, top = panel.view or panel.extent
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)


def map_panels(path: Path, panels: Sequence[MapPanel], *, panel_size: float = 4.6) -> Path:
    """Maps side by side (one row), each with its colour bar or legend and outlines."""
    fig = Figure(figsize=(panel_size * len(panels) + 0.6, panel_size))
    for i, panel in enumerate(panels, start=1):
        _draw_panel(fig, fig.add_subplot(1, len(panels), i), panel)
    return _save(fig, path)


def grouped_bars(
    path: Path,
    groups: Sequence[BarGroup],
    *,
    series: Sequence[str],
    ylabel: str,
    title: str,
) -> Path:
    """Bars per group (one colour per series), whiskers where an interval is given."""
    fig = Figure(figsize=(max(5.0, 1.3 * len(groups) + 2.5), 3.8))
    ax = fig.add_subplot()
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for s, name in enumerate(series):
        values = [g.values[s] for g in groups]
        offsets = x + (s - (len(series) - 1) / 2) * width
        ax.bar(offsets, values, width, label=name)
        for offset, group in zip(offsets, groups, strict=True):
            interval = group.intervals[s] if s < len(group.intervals) else None
            if interval is not None:
                ax.plot([offset, offset], interval, color="black", lw=1.2)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(x, [g.name for g in groups], rotation=20, ha="right", fontsize=8)
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)

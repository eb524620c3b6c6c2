"""The hydrology grid: pixels grouped into blocks, and hydrology cells read back onto pixels.

The terrain analysis (:mod:`terraops.domain.hydrology`) runs on a grid of at
most :data:`MAX_HYDRO_CELLS` cells a side, whatever the scene's size, so it is
the one *global* step of the features whose memory does not grow with the
scene. Both directions work on a band of pixel rows as well as on a whole
raster, with the same numbers:

- :func:`hydro_blocks` of a band whose first row is a multiple of the factor
  gives exactly that band's rows of the whole raster's block means, so a scene
  can be reduced to its hydrology grid one window at a time;
- :func:`upsample_nearest` / :func:`upsample_bilinear` with ``row0`` give
  exactly rows ``row0 …`` of the whole upsampled raster, so pixel layers
  (HAND, drainage, flood depth) can be made one window at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from terraops.domain.landcover import CURVE_NUMBER_SOIL_B, LandCover

MAX_HYDRO_CELLS = 256
"""Largest side of the grid the terrain analysis runs on (pixels are grouped)."""


def hydro_factor(shape: tuple[int, int], max_cells: int = MAX_HYDRO_CELLS) -> int:
    """Pixels per hydrology cell (per side) so the grid is at most ``max_cells`` a side."""
    return max(1, math.ceil(max(shape) / max_cells))


@dataclass(frozen=True)
class HydroBlocks:
    """What the terrain analysis needs of the pixels, on the hydrology grid.

    ``fractions[..., k]`` is the share of land-cover class ``CLASSES[k]`` in each
    block, ``sea_share`` the share of water at or below sea level.
    """

    dem: np.ndarray  # (ch, cw) block-mean elevation, NaN where no pixel is valid
    sea_share: np.ndarray  # (ch, cw)
    fractions: np.ndarray  # (ch, cw, k)

    @staticmethod
    def stack(parts: list[HydroBlocks]) -> HydroBlocks:
        """The blocks of consecutive bands of rows, top to bottom, as one grid."""
        return HydroBlocks(
            np.concatenate([p.dem for p in parts]),
            np.concatenate([p.sea_share for p in parts]),
            np.concatenate([p.fractions for p in parts]),
        )


CLASSES: tuple[LandCover, ...] = tuple(CURVE_NUMBER_SOIL_B)
"""Land-cover classes with a curve number, in the order of ``HydroBlocks.fractions``."""


def hydro_blocks(
    dem: np.ndarray, landcover: np.ndarray, factor: int, sea_level_m: float = 0.0
) -> HydroBlocks:
    """Block means of the DEM, the sea and each class's share (whole raster or a band)."""
    water = landcover == int(LandCover.WATER)
    sea = block_mean((water & (dem <= sea_level_m)).astype(np.float64), factor)
    fractions = [block_mean((landcover == int(c)).astype(np.float64), factor) for c in CLASSES]
    return HydroBlocks(block_mean(dem, factor), sea, np.stack(fractions, axis=-1))


def block_mean(grid: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor``×``factor`` blocks (edge blocks use the pixels they have)."""
    if factor == 1:
        return grid.astype(np.float64)
    h, w = grid.shape
    ch, cw = -(-h // factor), -(-w // factor)
    padded = np.full((ch * factor, cw * factor), np.nan)
    padded[:h, :w] = grid
    blocks = padded.reshape(ch, factor, cw, factor)
    counts = np.isfinite(blocks).sum(axis=(1, 3))
    sums = np.nansum(blocks, axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def upsample_nearest(
    grid: np.ndarray, factor: int, shape: tuple[int, int], row0: int = 0
) -> np.ndarray:
    """Each pixel takes the value of the hydrology cell it lies in.

    ``shape`` is the (rows, cols) of pixels wanted, starting at pixel row ``row0``.
    """
    rows = np.arange(row0, row0 + shape[0]) // factor
    cols = np.arange(shape[1]) // factor
    return grid[rows[:, None], cols[None, :]]


def upsample_bilinear(
    grid: np.ndarray, factor: int, shape: tuple[int, int], row0: int = 0
) -> np.ndarray:
    """Bilinear interpolation between hydrology-cell centres (edges clamped).

    ``shape`` is the (rows, cols) of pixels wanted, starting at pixel row ``row0``.
    """
    if factor == 1:
        return grid[row0 : row0 + shape[0], : shape[1]].astype(np.float64)
    rr = (np.arange(row0, row0 + shape[0]) + 0.5) / factor - 0.5
    cc = (np.arange(shape[1]) + 0.5) / factor - 0.5
    rr = np.clip(rr, 0, grid.shape[0] - 1)
    cc = np.clip(cc, 0, grid.shape[1] - 1)
    r0 = np.floor(rr).astype(int)
    c0 = np.floor(cc).astype(int)
    r1 = np.minimum(r0 + 1, grid.shape[0] - 1)
    c1 = np.minimum(c0 + 1, grid.shape[1] - 1)
    fr = (rr - r0)[:, None]
    fc = (cc - c0)[None, :]
    g = np.nan_to_num(grid.astype(np.float64))
    # Along the columns once per hydrology row, then gathered: the same
    # arithmetic per pixel as interpolating each pixel's four corners.
    across = g[:, c0] * (1 - fc) + g[:, c1] * fc
    resampled: np.ndarray = across[r0] * (1 - fr) + across[r1] * fr
    return resampled

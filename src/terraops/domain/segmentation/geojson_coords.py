"""GeoJSON ``coordinates`` text of many polygons, written by one compiled loop.

``json.dumps`` writes every float with ``repr`` — the shortest decimal that
reads back as the same double — and that is most of the time it takes to
encode a polygon answer (every vertex is two floats). Coordinates snapped to
a grid of ``10**-d`` (as the GeoJSON output is, ``set_precision``) are the
doubles nearest to decimals ``k · 10**-d``; for ``|v| ≥ 1e-3`` (where
``repr`` uses fixed notation, and no shorter decimal lies within half a unit
of the last place) that decimal *is* the shortest one, so its text can be
written from the integer ``k`` digit by digit, trailing zeros dropped —
byte for byte what ``repr`` gives. A value that is not exactly such a grid
point, or is too small or large for the argument, makes
:func:`polygon_coordinates_text` return None, and the caller encodes with
``json.dumps`` as before.

Pure code: arrays in, text out.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import ArrayLike

#: Fixed notation and an exact integer ``k`` are guaranteed inside these bounds.
_MIN_ABS, _MAX_ABS = 1e-3, 1e6


@numba.njit(cache=True)
def _write_number(out: np.ndarray, pos: int, value: float, scale: float, decimals: int) -> int:
    """Write ``value`` at ``out[pos:]`` as ``repr`` would; returns the new end, or -1
    where the value is outside the argument of the module docstring."""
    magnitude = abs(value)
    if not (_MIN_ABS <= magnitude < _MAX_ABS):
        return -1
    k = np.rint(magnitude * scale)
    if k / scale != magnitude:
        return -1
    n = np.int64(k)
    if value < 0:
        out[pos] = 45  # "-"
        pos += 1
    unit = np.int64(10) ** decimals
    whole, frac = n // unit, n % unit
    digits = 1
    while whole >= np.int64(10) ** digits:
        digits += 1
    for i in range(digits - 1, -1, -1):
        out[pos + i] = 48 + whole % 10
        whole //= 10
    pos += digits
    out[pos] = 46  # "."
    pos += 1
    kept = decimals
    while kept > 1 and frac % 10 == 0:
        frac //= 10
        kept -= 1
    for i in range(kept - 1, -1, -1):
        out[pos + i] = 48 + frac % 10
        frac //= 10
    return pos + kept


@numba.njit(cache=True)
def _write_all(
    coords: np.ndarray,
    ring_ends: np.ndarray,
    part_ring_ends: np.ndarray,
    geom_part_ends: np.ndarray,
    multi: np.ndarray,
    decimals: int,
    out: np.ndarray,
    geom_ends: np.ndarray,
) -> bool:
    """Each geometry's coordinates array text, one after another in ``out``."""
    scale = 10.0**decimals
    pos, coord, ring, part = 0, 0, 0, 0
    for g in range(geom_part_ends.shape[0]):
        if multi[g]:
            out[pos] = 91  # "["
            pos += 1
        first_part = True
        while part < geom_part_ends[g]:
            if not first_part:
                out[pos], out[pos + 1] = 44, 32  # ", "
                pos += 2
            first_part = False
            out[pos] = 91
            pos += 1
            first_ring = True
            while ring < part_ring_ends[part]:
                if not first_ring:
                    out[pos], out[pos + 1] = 44, 32
                    pos += 2
                first_ring = False
                out[pos] = 91
                pos += 1
                first_coord = True
                while coord < ring_ends[ring]:
                    if not first_coord:
                        out[pos], out[pos + 1] = 44, 32
                        pos += 2
                    first_coord = False
                    out[pos] = 91
                    pos = _write_number(out, pos + 1, coords[coord, 0], scale, decimals)
                    if pos < 0:
                        return False
                    out[pos], out[pos + 1] = 44, 32
                    pos = _write_number(out, pos + 2, coords[coord, 1], scale, decimals)
                    if pos < 0:
                        return False
                    out[pos] = 93  # "]"
                    pos += 1
                    coord += 1
                out[pos] = 93
                pos += 1
                ring += 1
            out[pos] = 93
            pos += 1
            part += 1
        if multi[g]:
            out[pos] = 93
            pos += 1
        geom_ends[g] = pos
    return True


def polygon_coordinates_text(
    coords: np.ndarray,
    ring_ends: ArrayLike,
    part_ring_ends: ArrayLike,
    geom_part_ends: ArrayLike,
    multi: ArrayLike,
    decimals: int,
) -> list[str] | None:
    """The ``coordinates`` JSON of each (multi)polygon, as ``json.dumps`` writes it.

    ``coords`` (n, 2) are every ring's vertices in order; ``ring_ends`` the
    end (exclusive) of each ring in ``coords``, ``part_ring_ends`` of each
    polygon's rings (exterior first), ``geom_part_ends`` of each geometry's
    polygons; ``multi`` marks MultiPolygons. None if a coordinate is not on
    the ``10**-decimals`` grid in the range where the text is exact (or
    ``decimals`` is outside 1–9, where ``k`` would not be exact).
    """
    if not 1 <= decimals <= 9:
        return None
    coords = np.ascontiguousarray(coords, dtype=np.float64)
    geom_part_ends = np.asarray(geom_part_ends, dtype=np.int64)
    ring_ends = np.asarray(ring_ends, dtype=np.int64)
    part_ring_ends = np.asarray(part_ring_ends, dtype=np.int64)
    n_geoms = len(geom_part_ends)
    # Per number at most "-" + 6 digits + "." + decimals; brackets and ", " around them.
    size = len(coords) * (2 * (8 + decimals) + 6) + 6 * (len(ring_ends) + len(part_ring_ends))
    out = np.empty(size + 4 * n_geoms + 16, dtype=np.uint8)
    ends = np.empty(n_geoms, dtype=np.int64)
    ok = _write_all(
        coords,
        ring_ends,
        part_ring_ends,
        geom_part_ends,
        np.asarray(multi, dtype=np.bool_),
        int(decimals),
        out,
        ends,
    )
    if not ok:
        return None
    text = out[: int(ends[-1]) if n_geoms else 0].tobytes().decode("ascii")
    starts = [0, *ends[:-1].tolist()]
    return [text[a:b] for a, b in zip(starts, ends.tolist(), strict=True)]


__all__ = ["polygon_coordinates_text"]

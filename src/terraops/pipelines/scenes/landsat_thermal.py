"""Landsat land-surface temperature for a Sentinel-2 import, in bounded memory.

Sentinel-2 has no thermal band, so ``--thermal`` takes the LST of a Landsat 8/9
product of a near date. The Landsat window over the tile (with a small halo
for the bilinear kernel) is derived strip by strip exactly as the Landsat
import derives it — its own dark objects, cold-cloud line and cloud mask
(:mod:`terraops.pipelines.scenes.landsat_strips`) — into a float32 GeoTIFF in
a folder of the staging area. Each Sentinel-2 strip then resamples its rows
from that file, GDAL reading only the source rows the strip needs. What is held
is one strip of either grid, never a whole tile (a 10,980² px float grid alone
is 480 MB). The file goes before the scene is finished.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from terraops.adapters import landsat_product, sentinel2_product
from terraops.adapters.landsat_product import Grid, LandsatProduct
from terraops.errors import InvalidInputError
from terraops.pipelines.scenes.landsat_strips import StripArea, scene_constants, write_strips

THERMAL_GAP_WARNING_DAYS = 16.0
"""One Landsat revisit: a thermal product further away than this is worth a warning."""
THERMAL_HALO_PX = 2
_FOLDER = ".landsat-thermal"
_CORRECTION = "dos1"  # what the Landsat import does by default


@dataclass
class StagedThermal:
    """The Landsat LST staged on its own grid, cut into Sentinel-2 strips on demand."""

    folder: Path
    product: LandsatProduct
    info: dict[str, Any]
    finite: int = 0
    pixels: int = 0

    def rows(self, grid: Grid, r0: int, r1: int) -> np.ndarray:
        """LST (°C, NaN = none) of rows ``r0:r1`` of ``grid``, resampled bilinearly."""
        strip = landsat_product.window_grid(grid, Window(0, r0, grid.width, r1 - r0))
        lst = sentinel2_product.reproject_file(self.folder / "lst.tif", strip)
        self.finite += int(np.count_nonzero(np.isfinite(lst)))
        self.pixels += lst.size
        return lst

    def finish(self) -> list[str]:
        """After the strips: remove the staged file, refuse a scene the product gave no
        LST, record the coverage; the warning for a partial one."""
        shutil.rmtree(self.folder, ignore_errors=True)
        coverage = self.finite / self.pixels if self.pixels else 0.0
        if coverage == 0.0:
            raise InvalidInputError(
                f"the thermal Landsat product {self.product.meta.product_id} has no clear "
                "land-surface temperature over the Sentinel-2 scene (cloud or no data)",
                hint="use a clearer Landsat acquisition of a near date",
            )
        self.info["coverage"] = round(coverage, 6)
        if coverage == 1.0:
            return []
        return [
            f"the thermal Landsat product gives no LST for {100 * (1 - coverage):.1f}% of the "
            "scene (its clouds, no data or edge): those pixels are masked"
        ]


@dataclass(frozen=True)
class ThermalSource:
    """A Landsat product checked to cover a Sentinel-2 grid, and its window over it."""

    product: LandsatProduct
    window: Window


def open_thermal(product_dir: Path, grid: Grid) -> ThermalSource:
    """The thermal product, checked before anything is written: readable, overlapping."""
    product = landsat_product.open_product(Path(product_dir))
    if not sentinel2_product.overlaps(grid, product.grid):
        raise InvalidInputError(
            f"the thermal Landsat product {product.meta.product_id} does not overlap the "
            "Sentinel-2 scene",
            hint="use a Landsat product whose path/row covers the Sentinel-2 tile",
        )
    window = landsat_product.bbox_window(product.grid, grid.bounds, grid.crs)
    return ThermalSource(product, _padded(window, product.grid, THERMAL_HALO_PX))


def stage_thermal(
    source: ThermalSource,
    staging: Path,
    grid: Grid,
    acquired: str | None,
    say: Callable[[str], None],
) -> tuple[StagedThermal, list[str]]:
    """The product's LST over ``grid`` derived into ``staging``; the date-gap warning."""
    product, window = source.product, source.window
    area = StripArea(product, window, landsat_product.window_grid(product.grid, window))
    folder = staging / _FOLDER
    folder.mkdir()
    constants = scene_constants(area, correction=_CORRECTION, say=say)
    written = write_strips(
        folder,
        area,
        correction=_CORRECTION,
        constants=constants,
        layer_tags={"lst": {}, "clear": {}},
        say=lambda text: say(f"Landsat LST: {text}"),
    )
    gap, warnings = _date_gap(product, acquired)
    info = {
        "product_id": product.meta.product_id,
        "spacecraft": product.meta.spacecraft,
        "processing_level": product.meta.processing_level,
        "acquired": product.meta.acquired,
        "date_gap_days": abs(gap) if gap is not None else None,
        "landsat_minus_sentinel2_days": gap,
        "lst_source": "Level-2 ST_B10" if product.thermal == "st" else "computed from band 10",
        "lst": written.record.get("lst"),
        "landsat_masked_fraction": written.record["masked_fraction"],
        "window": {
            "col_off": int(window.col_off),
            "row_off": int(window.row_off),
            "width": int(window.width),
            "height": int(window.height),
        },
        "resampling": f"bilinear {abs(product.grid.transform.a):g} m -> "
        f"{abs(grid.transform.a):g} m",
        "files": {
            role: {"name": path.name, "sha256": landsat_product.file_sha256(path)}
            for role, path in {"MTL": product.mtl, **product.files}.items()
        },
    }
    return StagedThermal(folder, product, info), warnings


def _padded(window: Window, grid: Grid, halo: int) -> Window:
    col0, row0 = max(int(window.col_off) - halo, 0), max(int(window.row_off) - halo, 0)
    col1 = min(int(window.col_off + window.width) + halo, grid.width)
    row1 = min(int(window.row_off + window.height) + halo, grid.height)
    return Window(col0, row0, col1 - col0, row1 - row0)


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _date_gap(product: LandsatProduct, acquired: str | None) -> tuple[float | None, list[str]]:
    """Days from the Sentinel-2 acquisition to the Landsat one, and a warning past a revisit."""
    s2_time, landsat_time = _instant(acquired), _instant(product.meta.acquired)
    if s2_time is None or landsat_time is None:
        return None, []
    gap = round((landsat_time - s2_time).total_seconds() / 86400.0, 3)
    if abs(gap) <= THERMAL_GAP_WARNING_DAYS:
        return gap, []
    return gap, [
        f"the thermal Landsat product was acquired {abs(gap):.1f} days "
        f"{'after' if gap > 0 else 'before'} the Sentinel-2 scene: surface "
        "temperatures may have changed in between"
    ]

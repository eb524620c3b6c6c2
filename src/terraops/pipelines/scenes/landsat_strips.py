"""A Landsat product imported strip by strip: a whole scene in bounded memory.

A whole Landsat scene is about 7,800² px; read at once, its bands and the
arrays derived from them take several GB. The import instead makes three
passes over strips of
:data:`~terraops.pipelines.scenes.scene_strips.STRIP_ROWS` rows:

1. the DN histogram of each band's valid pixels → the DOS1 dark objects;
2. the thermal-DN histogram of clear land → the cold-cloud line
   (:mod:`terraops.domain.landsat.scene_constants`: both exact, whatever the
   strips);
3. each strip with :data:`~terraops.domain.landsat.clouds.CLOUD_DILATION_PX`
   rows of halo above and below (so the cloud mask grows across strip edges
   as it does on the whole area), derived with those constants and written
   into the open GeoTIFFs of the staging folder.

What is held is one strip of bands and derived arrays, not the scene; the
pixel counts of the mask fractions and the LST summary are summed over strips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from terraops.adapters import landsat_product
from terraops.adapters.landsat_product import Grid, LandsatProduct
from terraops.domain.landsat.clouds import CLOUD_DILATION_PX
from terraops.domain.landsat.mtl import REFLECTIVE_BANDS
from terraops.domain.landsat.product import (
    ProductPixels,
    bt_from_band10,
    clear_land_dn_counts,
    derive_layers,
    valid_dn_counts,
)
from terraops.domain.landsat.scene_constants import (
    DN_LEVELS,
    SceneConstants,
    haze_of_counts,
    t_low_of_counts,
)
from terraops.domain.scene.generator import to_scaled_reflectance_or_nodata
from terraops.domain.scene.spectra import BANDS
from terraops.pipelines.scenes import scene_strips
from terraops.pipelines.scenes.scene_strips import StripLayers, StripsWritten, row_strips


@dataclass(frozen=True)
class StripArea:
    """The imported area of a product (``window`` None: all of it) and its grid."""

    product: LandsatProduct
    window: Window | None
    grid: Grid

    def strips(self) -> list[tuple[int, int]]:
        return row_strips(self.grid.height)

    def read(self, r0: int, r1: int, halo: int = 0) -> tuple[ProductPixels, slice]:
        """Pixels of rows ``r0:r1`` of the area with up to ``halo`` rows each side,
        and where rows ``r0:r1`` lie in what was read."""
        top, bottom = max(0, r0 - halo), min(self.grid.height, r1 + halo)
        row_off = int(self.window.row_off) if self.window is not None else 0
        col_off = int(self.window.col_off) if self.window is not None else 0
        window = Window(col_off, row_off + top, self.grid.width, bottom - top)
        pixels = landsat_product.read_pixels(self.product, window)
        return pixels, slice(r0 - top, r1 - top)


def _each_strip(area: StripArea, say: Callable[[str], None], what: str) -> Iterator[ProductPixels]:
    strips = area.strips()
    for i, (r0, r1) in enumerate(strips, start=1):
        say(f"{what}: strip {i}/{len(strips)}")
        yield area.read(r0, r1)[0]


def scene_constants(
    area: StripArea, *, correction: str, say: Callable[[str], None]
) -> SceneConstants:
    """The DOS1 haze per band and the cold-cloud line of the whole area (passes 1–2)."""
    meta = area.product.meta
    haze = dict.fromkeys(REFLECTIVE_BANDS, 0.0)
    if correction == "dos1" and meta.reflectance_level == "toa":
        totals: dict[int, np.ndarray] = {}
        for pixels in _each_strip(area, say, "dark objects"):
            for n, counts in valid_dn_counts(pixels, meta).items():
                totals[n] = totals[n] + counts if n in totals else counts
        haze = haze_of_counts(totals, meta)
    if "QA" not in area.product.files:
        return SceneConstants(haze, None)
    clear_land = np.zeros(DN_LEVELS, dtype=np.int64)
    band10 = False
    for pixels in _each_strip(area, say, "clear land"):
        strip_counts = clear_land_dn_counts(
            pixels, meta, thermal=area.product.thermal, correction=correction, haze_by_band=haze
        )
        assert strip_counts is not None  # the product has a QA band
        clear_land += strip_counts
        band10 = bt_from_band10(pixels, meta)
    return SceneConstants(haze, t_low_of_counts(clear_land, meta, from_band10=band10))


def write_strips(
    folder: Path,
    area: StripArea,
    *,
    correction: str,
    constants: SceneConstants,
    layer_tags: Mapping[str, Mapping[str, str]],
    say: Callable[[str], None],
) -> StripsWritten:
    """Pass 3: every strip derived and written into ``folder``'s layers (``lst`` and
    ``clear`` always; the reflectance bands named in ``layer_tags``)."""

    def derive(r0: int, r1: int) -> StripLayers:
        pixels, core = area.read(r0, r1, halo=CLOUD_DILATION_PX)
        derived = derive_layers(
            pixels,
            area.product.meta,
            thermal=area.product.thermal,
            correction=correction,
            constants=constants,
            core=core,
        )
        rows = {
            n: to_scaled_reflectance_or_nodata(derived.reflectance[n])
            for n in BANDS
            if n in layer_tags
        }
        rows["lst"] = derived.lst_c
        return StripLayers(rows, derived.clear, derived.lst_c, derived.tally, derived.record)

    return scene_strips.write_strips(
        folder, area.grid, layer_tags, derive, say, doing="calibrating and writing"
    )

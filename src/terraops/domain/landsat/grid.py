"""A Landsat product's grid from its MTL, for band files that carry no georeferencing.

Cropped teaching products (and some re-saved ones) ship GeoTIFFs without a CRS or
geotransform; their MTL still says where the pixels are. ``PROJECTION_ATTRIBUTES``
gives the map projection (UTM on WGS84 for every Landsat 8/9 scene outside
Antarctica), the zone and the *centres* of the corner pixels
(``CORNER_UL_PROJECTION_X_PRODUCT`` …), so the grid's outer edge lies half a
pixel beyond them (USGS Landsat 8 Level-2 Data Format Control Book, LSDS-1328).
Southern scenes keep the northern zone with negative northings, so the EPSG
code is always 326xx.
"""

from __future__ import annotations

from dataclasses import dataclass

from terraops.domain.landsat.mtl import Mtl
from terraops.errors import InvalidInputError

PROJECTION_GROUPS = ("PROJECTION_ATTRIBUTES", "PRODUCT_METADATA", "PROJECTION_PARAMETERS")
CORNER_KEYS = (
    "CORNER_UL_PROJECTION_X_PRODUCT",
    "CORNER_UL_PROJECTION_Y_PRODUCT",
    "CORNER_LR_PROJECTION_X_PRODUCT",
    "CORNER_LR_PROJECTION_Y_PRODUCT",
)
CELL_SIZE_KEY = "GRID_CELL_SIZE_REFLECTIVE"
_SIZE_TOLERANCE_PX = 1e-3
_NO_GRID_HINT = (
    "the band GeoTIFFs carry no georeferencing and the *_MTL.txt does not say where the "
    "pixels are: download the product again, or assign the grid with gdal_edit.py -a_srs "
    "-a_ullr"
)


@dataclass(frozen=True)
class MtlGrid:
    """A north-up UTM grid: outer-edge origin (UL corner of the UL pixel) and pixel size."""

    epsg: int
    left: float
    top: float
    cell_size: float
    width: int
    height: int

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL/affine order (a, b, c, d, e, f)."""
        return (self.cell_size, 0.0, self.left, 0.0, -self.cell_size, self.top)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        right = self.left + self.width * self.cell_size
        bottom = self.top - self.height * self.cell_size
        return (self.left, bottom, right, self.top)

    def describe(self) -> str:
        """One line for the scene's record."""
        return (
            f"grid from MTL: EPSG:{self.epsg}, corner pixel centres +/- half a pixel, "
            f"{self.cell_size:g} m, {self.width}x{self.height} px"
        )


def _number(mtl: Mtl, key: str) -> float | None:
    value = mtl.get(key, PROJECTION_GROUPS)
    return float(value) if isinstance(value, int | float) else None


def _utm_epsg(mtl: Mtl) -> int:
    projection = str(mtl.get("MAP_PROJECTION", PROJECTION_GROUPS) or "")
    datum = str(mtl.get("DATUM", PROJECTION_GROUPS) or "")
    zone = mtl.get("UTM_ZONE", PROJECTION_GROUPS)
    if projection != "UTM" or datum != "WGS84" or not isinstance(zone, int) or not 1 <= zone <= 60:
        raise InvalidInputError(
            f"the MTL's projection is {projection or 'missing'} / datum {datum or 'missing'} / "
            f"UTM zone {zone if zone is not None else 'missing'}: only UTM zones on WGS84 "
            "can be read from an MTL",
            hint=_NO_GRID_HINT,
        )
    return 32600 + zone


def _pixel_count(first: float, last: float, cell: float, what: str) -> float:
    span = abs(last - first) / cell
    if abs(span - round(span)) > _SIZE_TOLERANCE_PX:
        raise InvalidInputError(
            f"the MTL's corner pixel centres are {abs(last - first):g} m apart {what}, not a "
            f"whole number of {cell:g} m pixels",
            hint=_NO_GRID_HINT,
        )
    return round(span) + 1


def grid_from_mtl(mtl: Mtl, *, width: int, height: int) -> MtlGrid:
    """The grid the MTL describes, checked against the band files' ``width`` × ``height``.

    Raises :class:`InvalidInputError` naming what is missing or inconsistent: a
    grid that does not fit the pixels would put the city in the wrong place.
    """
    corners = {key: _number(mtl, key) for key in CORNER_KEYS}
    cell = _number(mtl, CELL_SIZE_KEY)
    missing = [key for key, value in corners.items() if value is None]
    if cell is None or cell <= 0:
        missing.append(CELL_SIZE_KEY)
    if missing:
        raise InvalidInputError(
            "the band files carry no georeferencing and the MTL does not describe the grid "
            f"(missing: {', '.join(missing)})",
            hint=_NO_GRID_HINT,
        )
    epsg = _utm_epsg(mtl)
    ul_x, ul_y, lr_x, lr_y = (float(corners[key] or 0.0) for key in CORNER_KEYS)
    assert cell is not None
    if lr_x <= ul_x or lr_y >= ul_y:
        raise InvalidInputError(
            f"the MTL's corners UL ({ul_x:g}, {ul_y:g}) and LR ({lr_x:g}, {lr_y:g}) are not "
            "a north-up grid",
            hint=_NO_GRID_HINT,
        )
    columns = _pixel_count(ul_x, lr_x, cell, "east-west")
    rows = _pixel_count(ul_y, lr_y, cell, "north-south")
    if (columns, rows) != (width, height):
        raise InvalidInputError(
            f"the MTL's corners describe {columns:g}x{rows:g} pixels of {cell:g} m but the "
            f"band files are {width}x{height} px",
            hint="the band files and the *_MTL.txt are not from the same product (or crop)",
        )
    return MtlGrid(epsg, ul_x - cell / 2, ul_y + cell / 2, cell, width, height)

"""Read a bare multiband GeoTIFF of Landsat 7 ETM+ digital numbers (no MTL beside it).

Only what the import needs: every band's raw DN (no scale/offset applied: these
are Level-1 counts, calibrated in :mod:`terraops.domain.landsat.etm`) and the grid.
The file must be north-up with square pixels in a CRS with an EPSG code, which a
Landsat crop in its UTM zone is; anything else is refused with what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError

from terraops.adapters.landsat_product import Grid
from terraops.errors import InvalidInputError, NotFoundError


def read_dn_bands(path: Path, band_numbers: Sequence[int]) -> tuple[dict[int, np.ndarray], Grid]:
    """ETM+ band number → DN array (file band i is ``band_numbers[i]``), and the grid."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"Landsat 7 file not found: {path}")
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InvalidInputError(f"{path.name} is not a readable GeoTIFF: {exc}") from exc
    with src:
        if src.count != len(band_numbers):
            raise InvalidInputError(
                f"{path.name} has {src.count} bands but {len(band_numbers)} band numbers were "
                f"given ({', '.join(map(str, band_numbers))})",
                hint="name the ETM+ band of every file band in order with --band-numbers, "
                "e.g. 1,2,3,4,5,7",
            )
        if not all(np.issubdtype(np.dtype(d), np.integer) for d in src.dtypes):
            raise InvalidInputError(
                f"{path.name} holds {src.dtypes[0]} values, not digital numbers",
                hint="this import reads Level-1 DN (integers); import reflectance with "
                "`terraops scene import geotiff`",
            )
        t = src.transform
        if src.crs is None:
            raise InvalidInputError(
                f"{path.name} has no CRS", hint="assign one with gdal_edit.py -a_srs"
            )
        if t.b != 0 or t.d != 0 or t.e >= 0 or not np.isclose(abs(t.a), abs(t.e)):
            raise InvalidInputError(
                f"{path.name} is not north-up with square pixels ({tuple(t)[:6]})",
                hint="warp it first: gdalwarp -t_srs EPSG:<its UTM zone> -tr 30 30",
            )
        grid = Grid(src.crs, t, src.width, src.height)
        grid.epsg  # noqa: B018 - refuses a CRS without an EPSG code before any work
        data = src.read()
    return {band: data[i] for i, band in enumerate(band_numbers)}, grid

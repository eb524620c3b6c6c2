"""A Sentinel-2 L2A window's digital numbers → reflectance, the clear mask and the record
(formats and sources in :mod:`terraops.domain.sentinel2`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from terraops.domain.mask_tally import MaskTally
from terraops.errors import InvalidInputError

S2_BANDS: dict[str, str] = {
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "nir": "B08",
    "swir": "B11",
}
"""terraops band → Sentinel-2 band: the Landsat import's five (OLI 2, 3, 4, 5, 6)."""
NATIVE_RESOLUTION_M: dict[str, int] = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B11": 20}
SCL = "SCL"
TARGET_RESOLUTION_M = 10
SATURATED_DN = 65535
"""PSD special values: DN 0 is NO_DATA, 65535 SATURATED."""

MASKED_SCL: dict[int, str] = {
    0: "no data",
    1: "saturated or defective",
    3: "cloud shadow",
    8: "cloud, medium probability",
    9: "cloud, high probability",
    10: "thin cirrus",
    11: "snow or ice",
}
"""Scene-classification codes that are not a usable surface (Sen2Cor's SCL legend)."""
SCL_TEXT: dict[int, str] = {
    0: "NODATA",
    1: "SATURATED_DEFECTIVE",
    3: "CLOUD_SHADOW",
    8: "CLOUD_MEDIUM_PROBA",
    9: "CLOUD_HIGH_PROBA",
    10: "THIN_CIRRUS",
    11: "SNOW_ICE",
}
"""How ``MTD_MSIL2A.xml`` names the masked codes (``SC_CLOUD_SHADOW`` …)."""


@dataclass(frozen=True)
class BandScaling:
    """reflectance = (DN + add) / quantification, with what said so (for the record)."""

    add: float
    quantification: float
    source: str

    def to_record(self) -> dict[str, Any]:
        return {"boa_add_offset": self.add, "quantification": self.quantification}


@dataclass(frozen=True)
class S2Pixels:
    """One window on the 10 m grid: float32 DN per band (NaN = no data) and the SCL codes."""

    bands: Mapping[str, np.ndarray]  # "B04" → DN (20 m bands already resampled)
    scl: np.ndarray  # uint8 codes, nearest-neighbour from 20 m


@dataclass(frozen=True)
class DerivedLayers:
    reflectance: dict[str, np.ndarray]  # terraops band → float32, NaN where masked
    clear: np.ndarray  # bool
    record: dict[str, Any]
    tally: MaskTally  # the pixel counts behind the record's mask fractions


def check_scl_legend(legend: Mapping[int, str]) -> None:
    """The product's own SCL legend must name the masked codes as expected.

    Sen2Cor has kept these codes since 2018; a product that numbers them
    otherwise would be masked wrongly, so it is refused rather than guessed at.
    """
    wrong = [
        f"{code} is {legend[code]!r}"
        for code, text in SCL_TEXT.items()
        if code in legend and text not in legend[code].upper()
    ]
    if wrong:
        raise InvalidInputError(
            "the product's scene classification legend differs from Sen2Cor's: " + "; ".join(wrong),
            hint="terraops masks SCL 0, 1, 3, 8, 9, 10 and 11 as Sen2Cor numbers them",
        )


def reflectance(dn: np.ndarray, scaling: BandScaling) -> np.ndarray:
    """(DN + add) / quantification as float32 (NaN stays NaN)."""
    value = (dn.astype(np.float32) + np.float32(scaling.add)) / np.float32(scaling.quantification)
    return np.asarray(value, dtype=np.float32)


def scl_mask(scl: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Pixels whose SCL class is in :data:`MASKED_SCL`, and each class's pixels."""
    masked = np.isin(scl, list(MASKED_SCL))
    return masked, {f"scl_{code}": scl == code for code in MASKED_SCL}


def derive_layers(
    pixels: S2Pixels, scaling: Mapping[str, BandScaling], *, resampling: Mapping[str, str]
) -> DerivedLayers:
    """Reflectance of the five bands and the clear mask (SCL, no data, saturation)."""
    missing = [band for band in S2_BANDS.values() if band not in pixels.bands]
    if missing:
        raise InvalidInputError(f"no pixels for {', '.join(missing)}")
    stack = [pixels.bands[band] for band in S2_BANDS.values()]
    fill = np.logical_or.reduce([~np.isfinite(dn) | (dn == 0) for dn in stack])
    saturated = np.logical_or.reduce([dn >= SATURATED_DN for dn in stack]) & ~fill
    by_scl, classes = scl_mask(pixels.scl)
    masked = fill | saturated | by_scl
    tally = MaskTally()
    tally.add({"masked": masked, "no_data": fill, "saturated": saturated, **classes})
    nan = np.float32(np.nan)
    out: dict[str, np.ndarray] = {}
    bands: dict[str, Any] = {}
    for name, band in S2_BANDS.items():
        value = reflectance(pixels.bands[band], scaling[band])
        value[masked] = nan
        out[name] = value
        bands[band] = {
            "terraops_band": name,
            "native_resolution_m": NATIVE_RESOLUTION_M[band],
            **scaling[band].to_record(),
            "resampling": resampling.get(band, "none"),
        }
    record: dict[str, Any] = {
        "reflectance": "(DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE; DN 0 = no data, "
        "65535 = saturated (Sentinel-2 PSD, L2A)",
        "offset_source": sorted({s.source for s in scaling.values()}),
        "bands": bands,
        "scl": {
            "masked_classes": {str(code): label for code, label in MASKED_SCL.items()},
            "resampling": resampling.get(SCL, "none"),
        },
        "cloud_mask": "Sen2Cor scene classification (SCL); no further dilation",
        "dilation_px": 0,
    }
    tally.write_fractions(record)
    return DerivedLayers(out, ~masked, record, tally)


def footprint_geojson(ring: list[tuple[float, float]]) -> dict[str, Any] | None:
    """A (lon, lat) ring → a GeoJSON Polygon (closed), or None without one."""
    if len(ring) < 3:
        return None
    coords = [list(p) for p in ring]
    if coords[0] != coords[-1]:
        coords.append(coords[0])
    return {"type": "Polygon", "coordinates": [coords]}

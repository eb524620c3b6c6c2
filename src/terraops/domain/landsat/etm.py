"""Landsat 7 ETM+ Level-1 digital numbers without their MTL → approximate reflectance
(pure: numpy, no I/O).

Some ETM+ crops circulate as a bare multiband GeoTIFF of 8-bit DN — bands 1, 2, 3, 4,
5 and 7, no thermal band, no QA band and no MTL (the stars R package's
``L7_ETMs.tif`` of Olinda/Recife is one). Without the MTL the product's own
calibration, gain state, date and sun angle are unknown, so this module uses the
published constants and says which assumption each step makes:

* radiance L = (LMAX − LMIN)/(QCALMAX − QCALMIN) · (DN − QCALMIN) + LMIN with the
  ETM+ LMIN/LMAX of products processed after 1 July 2000 (Chander, Markham & Helder
  2009, RSE 113:893–903, table 1; QCALMIN 1, QCALMAX 255);
* the gain state of each band: by default the Landsat 7 acquisition rule for land
  under a sun higher than 45° (bands 1, 2, 3, 5, 7 high gain; band 4 low gain, so
  vegetation does not saturate — Landsat 7 Science Data Users Handbook, ch. 6);
* TOA reflectance ρ = π·L·d² / (ESUN·sin θ_SE) with the ETM+ ESUN of Chander et al.
  2009 (table 11), an Earth–Sun distance d of 1 AU (the date is unknown: ±1.7 %, ±3.4 % on ρ) and an
  assumed sun elevation (at 8° S, Landsat 7's 10:00 overpass sees the sun at about
  45–56° through the year; the default 50° puts absolute reflectance within about
  ±10 %, and the normalised-difference indices the features use do not depend on it:
  a common factor cancels — they do depend on the gain states);
* DOS1 dark-object subtraction, as for Landsat 8 (:mod:`.radiometry`).

DN 0 is fill; DN 255 is saturation (the reflectance is only a lower bound, often
cloud): both are masked. There is no cloud mask and no land-surface temperature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from terraops.domain.landsat.etm_defaults import DEFAULT_GAINS
from terraops.domain.landsat.radiometry import (
    DOS1_DARK_OBJECT_REFLECTANCE,
    DOS1_DARK_PERCENTILE,
    dos1_haze,
)
from terraops.errors import InvalidInputError

ETM_BANDS: tuple[int, ...] = (1, 2, 3, 4, 5, 7)
"""The reflective ETM+ bands such a file holds, in file order (band 6 is thermal, 8 pan)."""
TERRAOPS_BANDS: dict[int, str] = {1: "blue", 2: "green", 3: "red", 4: "nir", 5: "swir"}
"""ETM+ band → scene band (band 5, 1.55–1.75 µm, is the SWIR the features use; band 7 is
read but not stored)."""
QCAL_MIN, QCAL_MAX = 1, 255
FILL_DN, SATURATED_DN = 0, 255
# Chander, Markham & Helder 2009 (RSE 113:893-903), table 1: ETM+ after 1 July 2000,
# LMIN/LMAX in W m-2 sr-1 um-1, per gain state.
LMIN_LMAX: dict[str, dict[int, tuple[float, float]]] = {
    "L": {
        1: (-6.2, 293.7),
        2: (-6.4, 300.9),
        3: (-5.0, 234.4),
        4: (-5.1, 241.1),
        5: (-1.0, 47.57),
        7: (-0.35, 16.54),
    },
    "H": {
        1: (-6.2, 191.6),
        2: (-6.4, 196.5),
        3: (-5.0, 152.9),
        4: (-5.1, 157.4),
        5: (-1.0, 31.06),
        7: (-0.35, 10.80),
    },
}
# Chander et al. 2009, table 11: ETM+ mean exoatmospheric solar irradiance, W m-2 um-1.
ESUN: dict[int, float] = {1: 1997.0, 2: 1812.0, 3: 1533.0, 4: 1039.0, 5: 230.8, 7: 84.90}
EARTH_SUN_DISTANCE_AU = 1.0
DARK_OBJECT = f"{DOS1_DARK_PERCENTILE} percentile of each band's TOA reflectance"
CALIBRATION_REFERENCE = "Chander, Markham & Helder 2009, RSE 113:893-903 (tables 1 and 11)"


def parse_gains(text: str) -> dict[int, str]:
    """``"HHHLHH"`` → {1: "H", ..., 7: "H"}: one letter, L or H, per band 1, 2, 3, 4, 5, 7."""
    letters = text.strip().upper()
    if len(letters) != len(ETM_BANDS) or set(letters) - {"L", "H"}:
        raise InvalidInputError(
            f"bad gain states {text!r}",
            hint="six letters, L (low) or H (high), for bands 1, 2, 3, 4, 5, 7; e.g. "
            f"{DEFAULT_GAINS} (land under a high sun)",
        )
    return dict(zip(ETM_BANDS, letters, strict=True))


def check_sun_elevation(degrees: float) -> float:
    """A sun elevation in (0, 90] degrees, else a clear error."""
    if not np.isfinite(degrees) or not 0.0 < degrees <= 90.0:
        raise InvalidInputError(
            f"bad sun elevation {degrees:g}°", hint="degrees above the horizon, in (0, 90]"
        )
    return float(degrees)


def toa_reflectance(
    dn: np.ndarray, band: int, gain: str, sun_elevation_deg: float, d_au: float = 1.0
) -> np.ndarray:
    """DN → TOA reflectance (float32) of one ETM+ band; NaN where DN is fill."""
    lmin, lmax = LMIN_LMAX[gain][band]
    gain_per_dn = (lmax - lmin) / (QCAL_MAX - QCAL_MIN)
    radiance = np.float32(gain_per_dn) * (dn.astype(np.float32) - np.float32(QCAL_MIN))
    radiance += np.float32(lmin)
    factor = np.pi * d_au**2 / (ESUN[band] * np.sin(np.radians(sun_elevation_deg)))
    value = (radiance * np.float32(factor)).astype(np.float32)
    return np.where(dn == FILL_DN, np.float32(np.nan), value)


def etm_reflectance(
    dn: Mapping[int, np.ndarray],
    *,
    gains: Mapping[int, str],
    sun_elevation_deg: float,
    correction: str = "dos1",
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    """(scene band → reflectance, valid mask, record) from the DN of bands 1–5 and 7.

    Masked (NaN, not valid): fill (DN 0) or saturation (DN 255) in any of the five bands
    the scene stores.
    """
    used = list(TERRAOPS_BANDS)
    fill = np.logical_or.reduce([dn[b] == FILL_DN for b in used])
    saturated = np.logical_or.reduce([dn[b] == SATURATED_DN for b in used]) & ~fill
    masked = fill | saturated
    reflectance: dict[str, np.ndarray] = {}
    bands: dict[str, Any] = {}
    for band in used:
        toa = toa_reflectance(dn[band], band, gains[band], sun_elevation_deg)
        toa[masked] = np.nan
        haze = dos1_haze(toa) if correction == "dos1" else 0.0
        reflectance[TERRAOPS_BANDS[band]] = np.clip(toa - np.float32(haze), 0.0, None)
        lmin, lmax = LMIN_LMAX[gains[band]][band]
        bands[f"B{band}"] = {
            "terraops_band": TERRAOPS_BANDS[band],
            "gain": gains[band],
            "lmin": lmin,
            "lmax": lmax,
            "esun": ESUN[band],
            **({"dos1_haze_reflectance": round(haze, 6)} if correction == "dos1" else {}),
        }
    if 7 in dn:
        bands["B7"] = {"terraops_band": "none (read, not stored)", "gain": gains[7]}
    record: dict[str, Any] = {
        "calibration": {
            "method": "ETM+ published LMIN/LMAX and ESUN (the product's MTL is not available)",
            "reference": CALIBRATION_REFERENCE,
            "qcal_min": QCAL_MIN,
            "qcal_max": QCAL_MAX,
            "sun_elevation_deg": sun_elevation_deg,
            "earth_sun_distance_au": EARTH_SUN_DISTANCE_AU,
            "assumed": "gain states, sun elevation and Earth-Sun distance (no MTL): absolute "
            "reflectance is approximate; normalised-difference indices do not depend on the "
            "sun elevation and distance (a common factor), but do on the gain states",
        },
        "bands": bands,
        "correction": {"method": correction}
        | (
            {
                "reference": "Chavez 1988 (RSE 24:459-479), 1996 (PE&RS 62:1025-1036)",
                "dark_object": DARK_OBJECT,
                "dark_object_reflectance": DOS1_DARK_OBJECT_REFLECTANCE,
            }
            if correction == "dos1"
            else {}
        ),
        "mask_fractions": {
            "fill": round(float(fill.mean()), 6),
            "saturated": round(float(saturated.mean()), 6),
        },
    }
    return reflectance, ~masked, record

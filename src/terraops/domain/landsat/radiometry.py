"""Landsat radiometry: TOA reflectance, DOS1 haze, brightness temperature and its
inverse, NDVI-threshold emissivity and the single-channel LST (sources in
:mod:`terraops.domain.landsat`).
"""

from __future__ import annotations

import numpy as np

from terraops.domain.landsat.mtl import Calibration

# --------------------------------------------------------------------------- constants
DOS1_DARK_PERCENTILE = 0.01
"""Dark object = this percentile (%) of a band's valid TOA reflectance, not the
strict minimum, so that one dead or noisy pixel cannot set the haze."""
DOS1_DARK_OBJECT_REFLECTANCE = 0.01  # Chavez 1996: dark objects reflect ~1 %

NDVI_SOIL = 0.2  # Sobrino et al. 2004: NDVI below → bare soil
NDVI_VEGETATION = 0.5  # above → fully vegetated
EMISSIVITY_VEGETATION = 0.99  # εv (Sobrino et al. 2004)
EMISSIVITY_SOIL_MIXED = 0.97  # εs in the mixed-pixel equation (Sobrino et al. 2004)
SOIL_EMISSIVITY_INTERCEPT = 0.979  # soil ε = 0.979 − 0.035·ρ_red (Sobrino et al. 2004,
SOIL_EMISSIVITY_RED_SLOPE = 0.035  # derived for TM6; applied to TIRS band 10 here)
CAVITY_SHAPE_FACTOR = 0.55  # F: mean geometric factor of the cavity term dε
EMISSIVITY_WATER = 0.99
NDWI_WATER = 0.0  # McFeeters NDWI (green − nir)/(green + nir) > 0 → open water

B10_WAVELENGTH_UM = 10.895  # TIRS band-10 effective wavelength λ
RHO2_UM_K = 14388.0  # ρ₂ = h·c/σ = 1.438e-2 m·K (Weng et al. 2004)
KELVIN = 273.15


# --------------------------------------------------------------------------- radiometry
def rescale(dn: np.ndarray, cal: Calibration) -> np.ndarray:
    """mult · DN + add as float32, NaN where DN = 0 (Landsat fill)."""
    value = dn.astype(np.float32) * np.float32(cal.mult) + np.float32(cal.add)
    return np.where(dn == 0, np.float32(np.nan), value)


def toa_reflectance(dn: np.ndarray, cal: Calibration, sun_elevation_deg: float) -> np.ndarray:
    """ρ = (M·DN + A) / sin(θ_SE): TOA reflectance corrected for the sun angle."""
    return rescale(dn, cal) / np.float32(np.sin(np.radians(sun_elevation_deg)))


def brightness_temperature(radiance: np.ndarray, k1: float, k2: float) -> np.ndarray:
    """At-sensor brightness temperature (K) from spectral radiance (W m⁻² sr⁻¹ µm⁻¹)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return k2 / np.log(k1 / radiance + 1.0)


def radiance_from_brightness_temperature(bt_k: np.ndarray, k1: float, k2: float) -> np.ndarray:
    """Inverse Planck: L = K1 / (exp(K2 / BT) − 1)."""
    return k1 / np.expm1(k2 / np.asarray(bt_k, dtype=np.float64))


def dos1_haze(toa: np.ndarray) -> float:
    """Path reflectance of one band: dark object's TOA reflectance − 1 %, never < 0."""
    valid = toa[np.isfinite(toa)]
    if valid.size == 0:
        return 0.0
    return haze_from_dark_object(float(np.percentile(valid, DOS1_DARK_PERCENTILE)))


def haze_from_dark_object(dark: float) -> float:
    """DOS1: the dark object is assumed to reflect 1 %; the rest is path reflectance."""
    return max(dark - DOS1_DARK_OBJECT_REFLECTANCE, 0.0)


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        index: np.ndarray = (a - b) / (a + b)
    return index


def emissivity_ndvi_threshold(ndvi: np.ndarray, red: np.ndarray, ndwi: np.ndarray) -> np.ndarray:
    """Band-10 surface emissivity by the NDVI-threshold method (Sobrino et al. 2004).

    * NDVI < 0.2 — bare soil: ε = 0.979 − 0.035·ρ_red;
    * NDVI > 0.5 — full vegetation: ε = εv = 0.99;
    * in between — Pv = ((NDVI − 0.2)/0.3)², ε = εv·Pv + εs·(1 − Pv) + dε with the
      cavity term dε = (1 − εs)(1 − Pv)·F·εv, εs = 0.97, F = 0.55;
    * open water (NDWI > 0, McFeeters 1996) — ε = 0.99.
    """
    soil = SOIL_EMISSIVITY_INTERCEPT - SOIL_EMISSIVITY_RED_SLOPE * red
    pv = np.clip((ndvi - NDVI_SOIL) / (NDVI_VEGETATION - NDVI_SOIL), 0.0, 1.0) ** 2
    ev, es = EMISSIVITY_VEGETATION, EMISSIVITY_SOIL_MIXED
    mixed = ev * pv + es * (1.0 - pv) + (1.0 - es) * (1.0 - pv) * CAVITY_SHAPE_FACTOR * ev
    eps = np.where(ndvi < NDVI_SOIL, soil, np.where(ndvi > NDVI_VEGETATION, ev, mixed))
    eps = np.where(ndwi > NDWI_WATER, EMISSIVITY_WATER, eps)
    return np.where(np.isfinite(ndvi), eps, np.nan).astype(np.float32)


def land_surface_temperature(bt_k: np.ndarray, emissivity: np.ndarray) -> np.ndarray:
    """LST (K) = BT / (1 + (λ·BT/ρ₂)·ln ε) — single-channel emissivity correction."""
    lst: np.ndarray = bt_k / (1.0 + (B10_WAVELENGTH_UM * bt_k / RHO2_UM_K) * np.log(emissivity))
    return lst

"""Daytime land-surface temperature (LST) of a summer afternoon, °C.

An additive model of published relationships, each term documented with its
source; coefficients are chosen inside the published ranges:

``LST = T_ref + spectral + canopy + albedo + neighbourhood + water + lapse + shade + noise``

* **spectral** — Landsat regressions of LST on indices over cities report
  −0.6 to −0.9 K per +0.1 NDVI and +1.2 to +1.5 K per +0.1 NDBI (e.g. Chen et
  al. 2006, Remote Sens. Environ. 104:133–146; Yuan & Bauer 2007, RSE
  106:375–386; Guha et al. 2018, Eur. J. Remote Sens. 51:667–678). The two
  indices are strongly collinear (NDBI ≈ −0.55 NDVI over urban scenes), so each
  single-index slope already carries the other's effect; adding both in full
  would double count. We use half of each: −3.75 K·NDVI + 6.75 K·NDBI, which
  is −0.75 K per 0.1 NDVI along the NDVI–NDBI line (and +1.36 K per 0.1 NDBI).
* **canopy** — trees cool more than other vegetation of the same NDVI
  (shade + transpiration). Tree cover is 8–12 K cooler than continuous urban
  fabric in Central European cities, and treeless green spaces cool much less
  (Schwaab et al. 2021, Nat. Commun. 12:6763): −3 K on tree pixels plus a
  −2 K × (tree cover within ~60 m) park cool-island term. Together with the
  spectral, albedo and neighbourhood terms, tree pixels end up ~9–11 K below
  roofs and roads, and 20 m cells of full tree cover ~7 K below cells with
  > 60 % building cover (which still hold some yards and shade).
* **albedo** — brighter surfaces absorb less short-wave radiation: −20 K per
  unit broadband albedo around 0.15 (a modelling choice of the order of
  cool-roof measurements; a white roof is ~5 K cooler than a dark one).
* **neighbourhood** — the surface urban heat island is a neighbourhood
  effect: +3 K × imperviousness smoothed over 100–500 m (gaussian σ = 150 m),
  i.e. ~+1.5 K for a half-impervious city, the mean daytime SUHI of 1.5 ± 1.2 K
  over 419 cities (Peng et al. 2012, Environ. Sci. Technol. 46:696–703).
* **water** — rivers and the sea cool their surroundings most within ~300–800 m:
  −3 K × exp(−d / 300 m) (d = distance to water); water surfaces themselves
  are 7–9 K below the rural reference.
* **lapse** — −0.65 K per 100 m of elevation (standard environmental lapse rate).
* **shade** — ground shaded by buildings is ~5 K cooler than sunlit ground.
* **noise** — spatially correlated (σ 0.4 K, ~60 m) + white (σ 0.3 K).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from terraops.domain.features import broadband_albedo, ndbi, ndvi
from terraops.domain.landcover import LandCover
from terraops.domain.scene.noise import smooth_noise

NDVI_COEF_K = -3.75
NDBI_COEF_K = 6.75
TREE_CANOPY_K = -3.0
TREE_NEIGHBOURHOOD_K = -2.0
TREE_NEIGHBOURHOOD_SIGMA_M = 60.0
ALBEDO_COEF_K = -20.0
ALBEDO_REF = 0.15
SUHI_MAX_K = 3.0
SUHI_SIGMA_M = 150.0
WATER_COOLING_K = -3.0
WATER_DECAY_M = 300.0
RIVER_SURFACE_K = -7.0
SEA_SURFACE_K = -9.0
LAPSE_K_PER_M = -0.0065
SHADE_K = -5.0

PHYSICS_SUMMARY: dict[str, str] = {
    "lst_ndvi": "-0.75 K per +0.1 NDVI (Landsat regressions: -0.6..-0.9)",
    "lst_ndbi": "+1.36 K per +0.1 NDBI (Landsat regressions: +1.2..+1.5)",
    "lst_trees": "-3 K canopy, -2 K x tree cover within 60 m (Schwaab et al. 2021: 8-12 K)",
    "lst_suhi": "+3 K x imperviousness smoothed sigma=150 m (Peng et al. 2012: 1.5+-1.2 K)",
    "lst_water": "-3 K x exp(-d/300 m) near water; water surfaces 7-9 K below rural",
    "lst_lapse": "-0.65 K per 100 m",
    "lst_albedo": "-20 K per unit broadband albedo (Liang 2001 narrow-to-broadband)",
    "lst_shade": "-5 K in building shadow",
}


def smooth_at(field: np.ndarray, sigma_m: float, resolution: float) -> np.ndarray:
    """Gaussian mean over ``sigma_m``, done on a grid ~σ/4 coarse (fast for big σ)."""
    step = max(1, int(sigma_m / resolution / 4))
    if step == 1:
        return np.asarray(ndimage.gaussian_filter(field, sigma_m / resolution, mode="reflect"))
    h, w = field.shape
    ch, cw = -(-h // step), -(-w // step)
    padded = np.pad(field, ((0, ch * step - h), (0, cw * step - w)), mode="edge")
    coarse = padded.reshape(ch, step, cw, step).mean(axis=(1, 3))
    coarse = ndimage.gaussian_filter(coarse, sigma_m / resolution / step, mode="reflect")
    return np.asarray(ndimage.zoom(coarse, step, order=1, mode="nearest", grid_mode=True))[:h, :w]


def land_surface_temperature(
    rng: np.random.Generator,
    *,
    true_reflectance: dict[str, np.ndarray],
    landcover: np.ndarray,
    shadow: np.ndarray,
    dem: np.ndarray,
    sea: np.ndarray,
    resolution: float,
    reference_c: float,
) -> np.ndarray:
    """LST (°C, float32) from the true surface — see the module docstring."""
    refl = true_reflectance
    veg_index = ndvi(refl["red"], refl["nir"])
    built_index = ndbi(refl["swir"], refl["nir"])
    albedo = broadband_albedo(refl)
    tree = landcover == int(LandCover.TREE)
    water = landcover == int(LandCover.WATER)
    impervious = np.isin(landcover, [int(LandCover.BUILDING), int(LandCover.ROAD)])

    lst = reference_c + NDVI_COEF_K * veg_index + NDBI_COEF_K * built_index
    lst += TREE_CANOPY_K * tree
    lst += TREE_NEIGHBOURHOOD_K * smooth_at(
        tree.astype(float), TREE_NEIGHBOURHOOD_SIGMA_M, resolution
    )
    lst += ALBEDO_COEF_K * (albedo - ALBEDO_REF)
    lst += SUHI_MAX_K * smooth_at(impervious.astype(float), SUHI_SIGMA_M, resolution)
    if water.any():
        dist = np.asarray(ndimage.distance_transform_edt(~water)) * resolution
        lst += WATER_COOLING_K * np.exp(-dist / WATER_DECAY_M)
    lst += LAPSE_K_PER_M * (dem - float(np.mean(dem)))
    lst += SHADE_K * shadow
    # Water surfaces: their own temperature, not the land formula.
    water_t = reference_c + np.where(sea, SEA_SURFACE_K, RIVER_SURFACE_K)
    lst = np.where(water, water_t, lst)
    shape = landcover.shape
    lst += 0.4 * smooth_noise(rng, shape, 60.0 / resolution) + 0.3 * rng.standard_normal(shape)
    return lst.astype(np.float32)

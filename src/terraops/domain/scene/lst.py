"""Daytime land-surface temperature (LST) of a summer afternoon, °C.

An additive model of published relationships, each term documented with its
source:

``LST = T_ref + spectral + canopy + albedo + neighbourhood + water + lapse + shade + noise``

Every city draws its own coefficients (:class:`LSTPhysics`) from the published
ranges below, so that a model trained on many synthetic cities learns
relations that hold across cities instead of one simulator's constants. The
nominal city (:meth:`LSTPhysics.nominal`) uses the central published values.

* **spectral** — Landsat regressions of LST on indices over cities report
  −0.6 to −0.9 K per +0.1 NDVI and +1.2 to +1.5 K per +0.1 NDBI (e.g. Chen et
  al. 2006, Remote Sens. Environ. 104:133–146; Yuan & Bauer 2007, RSE
  106:375–386; Guha et al. 2018, Eur. J. Remote Sens. 51:667–678). Each city
  draws both single-index slopes. The two indices are strongly collinear
  (NDBI ≈ −0.55 NDVI over urban scenes), so each single-index slope already
  carries the other's effect; adding both in full would double count. We use
  half of each (:data:`COLLINEAR_SHARE`): at the central slopes
  −3.75 K·NDVI + 6.75 K·NDBI, which is −0.75 K per 0.1 NDVI along the
  NDVI–NDBI line (and +1.36 K per 0.1 NDBI); over the drawn ranges the
  along-line slope stays within about −0.63 to −0.86 K per 0.1 NDVI.
* **canopy** — trees cool more than other vegetation of the same NDVI
  (shade + transpiration). Tree cover is 8–12 K cooler than continuous urban
  fabric in Central European cities, treeless green spaces cool much less,
  and denser tree cover cools more (Schwaab et al. 2021, Nat. Commun.
  12:6763). Each city draws how much cooler a lone tree's canopy is than
  sunlit roofs and asphalt (8–11 K); what the spectral term does not already
  give goes to a canopy term on tree pixels. A closed stand (a park, a wood)
  adds a park term × tree cover within ~60 m, a drawn 30–70 % of the headroom
  left to 12 K — so a canopy pixel is 8–12 K below roofs and asphalt whatever
  its surroundings (:attr:`LSTPhysics.canopy_k`, :attr:`LSTPhysics.park_k`).
* **albedo** — brighter surfaces absorb less short-wave radiation. New white
  roofs are ~28–36 K cooler than dark ones in afternoon sun for an albedo
  difference of ~0.6 (≈ −50 K per unit albedo at the roof surface; Global Cool
  Cities Alliance 2018, *A Practical Guide to Cool Roofs and Cool Pavements*).
  A satellite pixel mixes surfaces and the thermal sensor blurs, so we draw a
  damped −10 to −30 K per unit broadband albedo around 0.15 (a modelling
  choice, not a published range).
* **neighbourhood** — the surface urban heat island is a neighbourhood
  effect: amplitude × imperviousness smoothed over 100–500 m (gaussian
  σ = 150 m). The amplitude is set so that a half-impervious neighbourhood
  gets the city's SUHI, drawn from the daytime SUHI of 1.5 ± 1.2 K over 419
  cities (Peng et al. 2012, Environ. Sci. Technol. 46:696–703), a normal
  truncated to 0.1–5.1 K (a city's daytime SUHI is positive; the cut keeps
  3 σ above the mean). The truncation lifts the mean draw to ~1.8 K.
* **water** — rivers and the sea cool their surroundings most within
  ~300–800 m (inner-city lakes: 336 m and 471 m, Zheng et al. 2021, Remote
  Sens. 13:1526): amplitude × exp(−d / L), amplitude −2 to −4 K and e-folding
  distance L 150–450 m, so the cooling has faded to e⁻² (14 %) by 300–900 m.
  Water surfaces themselves are 6–8 K (rivers) and 8–10 K (the sea, deeper
  and mixed) below the rural reference on a summer afternoon (modelling
  choice).
* **lapse** — −0.60 to −0.70 K per 100 m of elevation around the standard
  environmental lapse rate of 0.65 K per 100 m (ICAO standard atmosphere).
* **shade** — ground shaded by buildings is much cooler than sunlit ground
  (often > 10 K at the surface on hot days, Middel et al. 2021, Bull. Amer.
  Meteor. Soc. 102(9)); mixed pixels see less: −2 to −8 K (modelling choice;
  the darker shaded reflectance also warms through the albedo term).
* **noise** — spatially correlated (σ 0.2–0.6 K, ~60 m) + white (σ 0.1–0.5 K):
  sensor and retrieval noise below the ~1 K accuracy usually quoted for
  Landsat LST (modelling choice).
* **background** — the rural reference LST of a summer afternoon, 24–40 °C:
  maritime to continental and arid summer days (modelling choice; a scene can
  override it with a given day's temperature).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage
from scipy.special import ndtr, ndtri

from terraops.domain.features import broadband_albedo, ndbi, ndvi
from terraops.domain.landcover import LandCover
from terraops.domain.scene.noise import smooth_noise

COLLINEAR_SHARE = 0.5
"""Share of each published single-index slope applied (NDVI and NDBI are collinear)."""
TREE_MINUS_BUILT_NDVI = 0.74
"""NDVI of broadleaf canopy (0.86) minus roofs and asphalt (≈ 0.12), from spectra.py."""
TREE_MINUS_BUILT_NDBI = -0.55
"""NDBI of broadleaf canopy (−0.43) minus roofs and asphalt (≈ 0.12), from spectra.py."""
MIN_CANOPY_K = 1.0
"""Trees always cool beyond their NDVI (shade, transpiration): at least this much."""
MAX_TREE_CONTRAST_K = 12.0
"""Upper end of Schwaab et al.'s tree–urban contrast: a closed stand's canopy."""
TREE_NEIGHBOURHOOD_SIGMA_M = 60.0
ALBEDO_REF = 0.15
SUHI_SIGMA_M = 150.0
SUHI_IMPERVIOUSNESS = 0.5
"""The drawn SUHI is what a neighbourhood of this imperviousness gets."""
NOISE_CORRELATION_M = 60.0


@dataclass(frozen=True)
class Coefficient:
    """Where one city coefficient comes from: its range, central value and source."""

    low: float
    high: float
    nominal: float
    unit: str
    source: str
    spread: tuple[float, float] | None = None
    """(mean, sd) of a normal truncated to [low, high]; ``None``: uniform."""

    def value(self, u: float) -> float:
        """The coefficient at quantile ``u`` ∈ [0, 1) of its distribution.

        Inverse-CDF sampling: exactly one uniform per coefficient, so the
        stream (and every other coefficient) stays put whatever the ranges.
        """
        if self.spread is None:
            return self.low + u * (self.high - self.low)
        mean, sd = self.spread
        lo, hi = ndtr((self.low - mean) / sd), ndtr((self.high - mean) / sd)
        return float(np.clip(mean + sd * ndtri(lo + u * (hi - lo)), self.low, self.high))


_LANDSAT = "Landsat regressions (Chen 2006; Yuan & Bauer 2007; Guha 2018)"
COEFFICIENTS: dict[str, Coefficient] = {
    "reference_c": Coefficient(24.0, 40.0, 32.0, "degC", "summer rural LST, modelling choice"),
    "ndvi_k_per_tenth": Coefficient(-0.9, -0.6, -0.75, "K per +0.1 NDVI", _LANDSAT),
    "ndbi_k_per_tenth": Coefficient(1.2, 1.5, 1.35, "K per +0.1 NDBI", _LANDSAT),
    "tree_contrast_k": Coefficient(8.0, 11.0, 9.5, "K", "Schwaab et al. 2021"),
    "stand_share": Coefficient(0.3, 0.7, 0.5, "1", "Schwaab et al. 2021, modelling choice"),
    "albedo_k": Coefficient(-30.0, -10.0, -20.0, "K per unit albedo", "modelling choice"),
    "suhi_k": Coefficient(0.1, 5.1, 1.5, "K", "Peng et al. 2012", spread=(1.5, 1.2)),
    "water_cooling_k": Coefficient(-4.0, -2.0, -3.0, "K", "modelling choice"),
    "water_decay_m": Coefficient(150.0, 450.0, 300.0, "m", "Zheng et al. 2021"),
    "river_surface_k": Coefficient(-8.0, -6.0, -7.0, "K", "modelling choice"),
    "sea_surface_k": Coefficient(-10.0, -8.0, -9.0, "K", "modelling choice"),
    "shade_k": Coefficient(-8.0, -2.0, -5.0, "K", "Middel et al. 2021, damped"),
    "lapse_k_per_100m": Coefficient(-0.70, -0.60, -0.65, "K per 100 m", "standard atmosphere"),
    "noise_correlated_k": Coefficient(0.2, 0.6, 0.4, "K", "modelling choice"),
    "noise_white_k": Coefficient(0.1, 0.5, 0.3, "K", "modelling choice"),
}
"""Every drawn coefficient, in draw order (see the module docstring for sources)."""


@dataclass(frozen=True)
class LSTPhysics:
    """One city's LST coefficients (names, units and ranges: :data:`COEFFICIENTS`)."""

    reference_c: float
    ndvi_k_per_tenth: float
    ndbi_k_per_tenth: float
    tree_contrast_k: float
    stand_share: float
    albedo_k: float
    suhi_k: float
    water_cooling_k: float
    water_decay_m: float
    river_surface_k: float
    sea_surface_k: float
    shade_k: float
    lapse_k_per_100m: float
    noise_correlated_k: float
    noise_white_k: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> LSTPhysics:
        """A city's coefficients: one uniform per coefficient, mapped to its range."""
        quantiles = rng.random(len(COEFFICIENTS))
        pairs = zip(COEFFICIENTS.items(), quantiles, strict=True)
        return cls(**{name: coef.value(float(u)) for (name, coef), u in pairs})

    @classmethod
    def nominal(cls) -> LSTPhysics:
        """The central published values, the same for every city.

        These are generator 1.x's constants, except the background (32 °C, was
        drawn in 30–34) and the park term (−1.25 K at full tree cover, was −2).
        """
        return cls(**{n: c.nominal for n, c in COEFFICIENTS.items()})

    def with_reference(self, reference_c: float) -> LSTPhysics:
        """The same city on another day: only the background temperature changes."""
        return replace(self, reference_c=float(reference_c))

    @property
    def ndvi_coef_k(self) -> float:
        """K per unit NDVI as applied (the collinear share of the published slope)."""
        return COLLINEAR_SHARE * 10.0 * self.ndvi_k_per_tenth

    @property
    def ndbi_coef_k(self) -> float:
        """K per unit NDBI as applied (the collinear share of the published slope)."""
        return COLLINEAR_SHARE * 10.0 * self.ndbi_k_per_tenth

    @property
    def canopy_k(self) -> float:
        """K on every tree pixel: the drawn lone-tree contrast minus what the NDVI
        and NDBI terms already give canopy against roofs and asphalt (≈ 5.5–7.5 K)."""
        spectral = (
            self.ndvi_coef_k * TREE_MINUS_BUILT_NDVI + self.ndbi_coef_k * TREE_MINUS_BUILT_NDBI
        )
        return -max(MIN_CANOPY_K, self.tree_contrast_k + spectral)

    @property
    def park_k(self) -> float:
        """K × tree cover within ~60 m: a share of the headroom left to 12 K."""
        return -self.stand_share * max(0.0, MAX_TREE_CONTRAST_K - self.tree_contrast_k)

    @property
    def suhi_amplitude_k(self) -> float:
        """K × smoothed imperviousness, so a half-impervious area gets ``suhi_k``."""
        return self.suhi_k / SUHI_IMPERVIOUSNESS

    def record(self) -> dict[str, dict[str, float]]:
        """Drawn and derived (as-applied) coefficients, rounded, for the manifest."""
        applied = {
            "ndvi_coef_k": self.ndvi_coef_k,
            "ndbi_coef_k": self.ndbi_coef_k,
            "canopy_k": self.canopy_k,
            "park_k": self.park_k,
            "suhi_amplitude_k": self.suhi_amplitude_k,
        }
        return {
            "drawn": {k: round(v, 4) for k, v in asdict(self).items()},
            "applied": {k: round(v, 4) for k, v in applied.items()},
        }


PHYSICS_SUMMARY: dict[str, str] = {
    "lst_ndvi": "half of the drawn -0.6..-0.9 K per +0.1 NDVI (Landsat regressions; "
    "half because NDVI and NDBI are collinear)",
    "lst_ndbi": "half of the drawn +1.2..+1.5 K per +0.1 NDBI (Landsat regressions)",
    "lst_trees": "canopy term: a lone tree is a drawn 8-11 K cooler than roofs and asphalt; "
    "park term x tree cover within 60 m: a closed stand up to 12 K (Schwaab et al. 2021)",
    "lst_suhi": "amplitude x imperviousness smoothed sigma=150 m; a half-impervious area gets "
    "the city's SUHI, drawn N(1.5, 1.2) K truncated to 0.1-5.1 (Peng et al. 2012)",
    "lst_water": "-2..-4 K x exp(-d/L), L 150-450 m (cooling within ~300-800 m, Zheng et al. "
    "2021); river surfaces 6-8 K, sea 8-10 K below the rural reference",
    "lst_lapse": "-0.60..-0.70 K per 100 m (standard atmosphere: 0.65)",
    "lst_albedo": "-10..-30 K per unit broadband albedo (Liang 2001), damped from cool-roof "
    "measurements",
    "lst_shade": "-2..-8 K in building shadow (Middel et al. 2021, damped)",
    "lst_noise": "correlated (60 m) sigma 0.2-0.6 K + white sigma 0.1-0.5 K",
    "lst_background": "rural reference LST drawn 24-40 degC unless given",
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
    physics: LSTPhysics,
    true_reflectance: dict[str, np.ndarray],
    landcover: np.ndarray,
    shadow: np.ndarray,
    dem: np.ndarray,
    sea: np.ndarray,
    resolution: float,
) -> np.ndarray:
    """LST (°C, float32) from the true surface — see the module docstring.

    ``rng`` draws only the noise; every coefficient comes from ``physics``.
    """
    p = physics
    lst = p.reference_c + _surface_terms(p, true_reflectance, landcover, shadow, resolution)
    water = landcover == int(LandCover.WATER)
    if water.any():
        dist = np.asarray(ndimage.distance_transform_edt(~water)) * resolution
        lst += p.water_cooling_k * np.exp(-dist / p.water_decay_m)
    lst += p.lapse_k_per_100m / 100.0 * (dem - float(np.mean(dem)))
    # Water surfaces: their own temperature, not the land formula.
    water_t = p.reference_c + np.where(sea, p.sea_surface_k, p.river_surface_k)
    lst = np.where(water, water_t, lst)
    shape = landcover.shape
    lst += p.noise_correlated_k * smooth_noise(rng, shape, NOISE_CORRELATION_M / resolution)
    lst += p.noise_white_k * rng.standard_normal(shape)
    return lst.astype(np.float32)


def _surface_terms(
    p: LSTPhysics,
    refl: dict[str, np.ndarray],
    landcover: np.ndarray,
    shadow: np.ndarray,
    resolution: float,
) -> np.ndarray:
    """Spectral, canopy, park, albedo, neighbourhood and shade terms (K)."""
    tree = landcover == int(LandCover.TREE)
    impervious = np.isin(landcover, [int(LandCover.BUILDING), int(LandCover.ROAD)])
    terms = p.ndvi_coef_k * ndvi(refl["red"], refl["nir"])
    terms += p.ndbi_coef_k * ndbi(refl["swir"], refl["nir"])
    terms += p.canopy_k * tree
    terms += p.park_k * smooth_at(tree.astype(float), TREE_NEIGHBOURHOOD_SIGMA_M, resolution)
    terms += p.albedo_k * (broadband_albedo(refl) - ALBEDO_REF)
    terms += p.suhi_amplitude_k * smooth_at(impervious.astype(float), SUHI_SIGMA_M, resolution)
    terms += p.shade_k * shadow
    return np.asarray(terms)

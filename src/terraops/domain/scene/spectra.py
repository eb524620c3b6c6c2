"""Multispectral imagery: surface reflectance per material, texture, shadows, sensor.

Reflectances are typical surface (BOA) values for Sentinel-2-like bands
B4 red, B3 green, B2 blue, B8 NIR, B11 SWIR-1 (ranges as in the ASTER/ECOSTRESS
spectral library and S2 L2A scenes of European cities): vegetation is dark in
red and bright in NIR (NDVI 0.7–0.9), built materials reflect more SWIR than
NIR (NDBI > 0, Zha et al. 2003), water absorbs NIR and SWIR.

The *true* reflectance (before sensor effects) drives the temperature model;
the *observed* one adds a slight blur (sensor MTF) and signal-dependent noise,
so features computed from the imagery are realistic, imperfect measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from terraops.domain.bands import REFLECTANCE_BANDS
from terraops.domain.features import broadband_albedo
from terraops.domain.landcover import LandCover
from terraops.domain.scene.layout import Layout
from terraops.domain.scene.noise import smooth_noise

BANDS: tuple[str, ...] = REFLECTANCE_BANDS

# (red, green, blue, nir, swir) surface reflectance.
ROOF_MATERIALS = np.array(
    [
        [0.24, 0.14, 0.10, 0.31, 0.40],  # clay tiles
        [0.18, 0.18, 0.17, 0.23, 0.29],  # concrete / grey slate
        [0.07, 0.07, 0.07, 0.09, 0.12],  # bitumen / dark membrane
        [0.42, 0.43, 0.43, 0.46, 0.47],  # white / metal (cool roof)
    ]
)
ROOF_SHARES = np.array([0.4, 0.3, 0.2, 0.1])
"""Nominal material shares (the average city)."""
WHITE_ROOF = 3
"""Index of the white / cool roof in :data:`ROOF_MATERIALS`."""
WHITE_ROOF_SHARE_RANGE = (0.05, 0.35)
"""Share of white roofs a city draws: from a few percent to a third. Whitewashed
Mediterranean towns and cities with cool-roof codes (California's Title 24 for
low-slope roofs) reach the upper end; most European cities sit near the lower."""
WHITE_ROOF_ALBEDO_RANGE = (0.45, 0.80)
"""Broadband albedo of a white roof, drawn per building: aged white membranes and
coatings (~0.45–0.6) to new ones (~0.7–0.8; Cool Roof Rating Council ratings,
Global Cool Cities Alliance 2018). So every city's imagery spans the albedos a
cool-roof scenario asks for, and a model learns the response it has to answer."""
CLASS_REFLECTANCE: dict[LandCover, tuple[float, float, float, float, float]] = {
    LandCover.ROAD: (0.085, 0.08, 0.075, 0.11, 0.14),  # asphalt
    LandCover.TREE: (0.03, 0.06, 0.03, 0.40, 0.16),  # broadleaf canopy
    LandCover.GRASS: (0.045, 0.085, 0.04, 0.35, 0.22),  # irrigated / healthy grass
    LandCover.WATER: (0.025, 0.04, 0.05, 0.012, 0.006),
    LandCover.BARE: (0.19, 0.15, 0.11, 0.26, 0.34),  # dry loam
}
DRY_GRASS = np.array([0.09, 0.10, 0.06, 0.27, 0.30])

SUN_ELEVATION_DEG = 50.0  # Sentinel-2 overpass (~10:30), mid-summer, ~50° N
SUN_AZIMUTH_DEG = 150.0  # from north, clockwise: sun in the SSE → shadows to the NNW
SHADOW_FACTOR = 0.35  # share of light left in shadow (diffuse sky light)


@dataclass(frozen=True)
class RoofPalette:
    """One city's roofs: its material shares and each building's white-roof albedo."""

    shares: np.ndarray  # (len(ROOF_MATERIALS),), sums to 1
    white_albedo: np.ndarray  # (n_objects,): albedo if the object's roof is white

    @classmethod
    def nominal(cls, n_objects: int) -> RoofPalette:
        """The average city: :data:`ROOF_SHARES`, white roofs as in :data:`ROOF_MATERIALS`."""
        white = float(broadband_albedo(dict(zip(BANDS, ROOF_MATERIALS[WHITE_ROOF], strict=True))))
        return cls(ROOF_SHARES.copy(), np.full(n_objects, white))

    @classmethod
    def draw(cls, rng: np.random.Generator, n_objects: int) -> RoofPalette:
        """The white share (:data:`WHITE_ROOF_SHARE_RANGE`, the other materials keep
        their nominal proportions) and a white albedo per object, from ``rng`` only."""
        lo, hi = WHITE_ROOF_SHARE_RANGE
        white = lo + float(rng.random()) * (hi - lo)
        others = np.delete(ROOF_SHARES, WHITE_ROOF)
        shares = np.insert(others / others.sum() * (1.0 - white), WHITE_ROOF, white)
        a_lo, a_hi = WHITE_ROOF_ALBEDO_RANGE
        return cls(shares, a_lo + rng.random(n_objects) * (a_hi - a_lo))


@dataclass(frozen=True)
class RoofOverride:
    """Roofs a scenario changed: a cool roof's broadband albedo, or plants on it.

    Applied to the drawn roof material before texture and shadow, so the
    random draws (and so every other pixel) stay those of the baseline city.
    """

    albedo: np.ndarray  # float (n, n): asked broadband albedo, NaN = roof as drawn
    vegetated: np.ndarray  # bool (n, n): a green roof (grass, as dry as the grass there)


@dataclass(frozen=True)
class Imagery:
    true: dict[str, np.ndarray]  # noise-free surface reflectance (0–1)
    observed: dict[str, np.ndarray]  # what the sensor records (0–1)
    shadow: np.ndarray  # bool: ground in building shadow


def cast_shadows(height: np.ndarray, resolution: float) -> np.ndarray:
    """Ground pixels shaded by a building standing between them and the sun.

    A pixel is in shadow if, stepping towards the sun, some building is taller
    than the sun ray's height at that distance (h > d·tan(elevation)).
    """
    n_rows, n_cols = height.shape
    max_h = float(height.max())
    if max_h <= 0:
        return np.zeros(height.shape, bool)
    tan_e = np.tan(np.radians(SUN_ELEVATION_DEG))
    az = np.radians(SUN_AZIMUTH_DEG)
    step_r, step_c = -np.cos(az), np.sin(az)  # one pixel towards the sun (rows grow south)
    shadow = np.zeros(height.shape, bool)
    steps = int(np.ceil(max_h / tan_e / resolution)) + 1
    for s in range(1, steps + 1):
        dr = round(s * step_r)
        dc = round(s * step_c)
        src = np.zeros_like(height)
        r0, r1 = max(0, dr), min(n_rows, n_rows + dr)
        c0, c1 = max(0, dc), min(n_cols, n_cols + dc)
        src[r0 - dr : r1 - dr, c0 - dc : c1 - dc] = height[r0:r1, c0:c1]
        shadow |= src > s * resolution * tan_e
    return shadow & (height <= 0)


def scale_to_albedo(reflectance: np.ndarray, albedo: np.ndarray | float) -> np.ndarray:
    """Reflectance (5, n) in :data:`BANDS` order scaled so its broadband albedo is ``albedo``.

    The albedo (:func:`terraops.domain.features.broadband_albedo`, Liang 2001)
    is linear in the bands, so one factor per pixel reaches it and keeps the
    roof's colour; reflectance is capped at 1 (nothing is whiter than white).
    """
    now = broadband_albedo(dict(zip(BANDS, reflectance, strict=True))) + 0.0018
    factor = (np.asarray(albedo) + 0.0018) / np.maximum(now, 1e-6)
    scaled: np.ndarray = np.clip(reflectance * factor, 0.0, 1.0)
    return scaled


def _override_roofs(true: np.ndarray, roofs: np.ndarray, override: RoofOverride) -> None:
    """Cool roofs: the material scaled to the asked albedo; green roofs: grass."""
    cool = roofs & np.isfinite(override.albedo)
    true[:, cool] = scale_to_albedo(true[:, cool], override.albedo[cool])
    green = roofs & override.vegetated
    true[:, green] = np.asarray(CLASS_REFLECTANCE[LandCover.GRASS])[:, None]


def render_imagery(
    rng: np.random.Generator,
    layout: Layout,
    resolution: float,
    *,
    roof_override: RoofOverride | None = None,
    palette: RoofPalette | None = None,
) -> Imagery:
    """Reflectance per band, with per-object texture, shadows and sensor effects.

    The draws depend on the grid and the object ids only, never on the land
    cover: a counterfactual layout (same objects) gets the same texture and noise.
    ``palette`` is the city's roofs (default: :meth:`RoofPalette.nominal`).
    """
    lc = layout.landcover
    shape = lc.shape
    n_obj = int(layout.object_id.max()) + 1
    true = np.zeros((5, *shape))
    # Per-class base values with a per-object brightness factor.
    obj_gain = rng.lognormal(0.0, 0.12, n_obj)[layout.object_id]
    for cls, refl in CLASS_REFLECTANCE.items():
        mask = lc == int(cls)
        true[:, mask] = np.asarray(refl)[:, None]
    # Roofs: a material per building (parcel), with its own brightness.
    palette = palette or RoofPalette.nominal(n_obj)
    roof_material = rng.choice(len(ROOF_MATERIALS), size=n_obj, p=palette.shares)
    roofs = lc == int(LandCover.BUILDING)
    roof_objects = layout.object_id[roofs]
    true[:, roofs] = ROOF_MATERIALS[roof_material[roof_objects]].T
    white = roofs.copy()
    white[roofs] = roof_material[roof_objects] == WHITE_ROOF
    true[:, white] = scale_to_albedo(true[:, white], palette.white_albedo[layout.object_id[white]])
    if roof_override is not None:
        _override_roofs(true, roofs, roof_override)
    # Grass dryness varies smoothly (irrigated parks vs dry verges). A green roof's
    # plants dry like the grass around them: extensive roofs (sedum, grass on a thin
    # substrate) are seldom irrigated and dry out in summer at least as fast.
    dryness = np.clip(0.5 + 0.35 * smooth_noise(rng, shape, 40.0 / resolution), 0, 1)
    grass = lc == int(LandCover.GRASS)
    if roof_override is not None:
        grass = grass | (roofs & roof_override.vegetated)
    base_grass = np.asarray(CLASS_REFLECTANCE[LandCover.GRASS])[:, None]
    true[:, grass] = base_grass * (1 - dryness[grass]) + DRY_GRASS[:, None] * dryness[grass]
    # Texture: per-object gain + fine within-object texture; crowns darker at the rim.
    fine = 1.0 + 0.05 * smooth_noise(rng, shape, 1.5)
    crown = np.where(lc == int(LandCover.TREE), 1.0 - 0.35 * layout.crown_position**2, 1.0)
    true *= (obj_gain * fine * crown)[None]
    shadow = cast_shadows(layout.building_height, resolution)
    true[:, shadow] *= SHADOW_FACTOR
    true = np.clip(true, 0.001, 1.0)

    observed = np.empty_like(true)
    for b in range(5):
        blurred = ndimage.gaussian_filter(true[b], 0.45)
        noise = rng.standard_normal(shape) * (0.003 + 0.015 * blurred)
        observed[b] = np.clip(blurred + noise, 0.0001, 1.0)
    return Imagery(
        true={name: true[i] for i, name in enumerate(BANDS)},
        observed={name: observed[i] for i, name in enumerate(BANDS)},
        shadow=shadow,
    )

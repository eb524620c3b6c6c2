"""Interventions applied to land cover and imagery, the same way for model and truth.

Two places edit a city for a scenario: the what-if run edits the *observed*
inputs (classified land cover and the bands) before the one feature path
recomputes every feature, and the generator edits the *true* layout to render
the counterfactual city it is validated against. Both pick the pixels a share
applies to with :func:`choose_pixels` on the field of :func:`selection_field`
— seeded from the scenario's sha256 and the intervention's index — so the
model and the truth change the same pixels (up to where their land covers
differ), and a scenario gives the same map every time.

The field is smooth over a few metres, so the chosen pixels form clumps the
size of a tree crown (or a building) rather than salt-and-pepper, which is
how planted trees and new buildings look from above and what the
neighbourhood features (canopy within 200 m, shade) respond to.

Water never changes, and no-data pixels stay no-data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from terraops.domain.landcover import NODATA_CODE, LandCover
from terraops.domain.scene.noise import smooth_noise
from terraops.domain.scene.spectra import (
    BANDS,
    CLASS_REFLECTANCE,
    ROOF_MATERIALS,
    scale_to_albedo,
)
from terraops.domain.whatif.scenario import RELATIVE_CANOPY, Intervention, Scenario

CLUMP_SCALE_M: dict[str, float] = {
    "tree_planting": 4.0,  # a crown's radius
    "park": 4.0,
    "depave": 6.0,
    "green_roof": 6.0,
    "develop": 10.0,  # half a building's footprint
}
"""Correlation length of the selection field per intervention (metres)."""
ROAD_PENALTY = 100.0
"""Trees go on unsealed ground first, then over paving (the field is ~N(0, 1))."""
MIN_PIXELS_FOR_MEDIAN = 10
"""Fewer pixels of a class than this: its generic spectrum is used instead."""
GENERIC_SPECTRA: dict[int, tuple[float, ...]] = {
    **{int(c): tuple(v) for c, v in CLASS_REFLECTANCE.items()},
    int(LandCover.BUILDING): tuple(float(v) for v in ROOF_MATERIALS[1]),  # concrete / slate
}
"""Fallback spectra (red, green, blue, nir, swir) for a class the scene lacks: typical
surface reflectance of asphalt, broadleaf canopy, grass, water, dry loam and concrete
(the generator's materials, :mod:`terraops.domain.scene.spectra`)."""

SENSOR_PSF_SIGMA_PX = 0.45
"""The sensor's point-spread function, a gaussian σ in pixels (Landsat OLI and
Sentinel-2 MSI: a full width at half maximum of about one pixel, σ ≈ 0.42).
A pixel records some of its neighbours, so repainting a roof also moves the
dark lane beside it; the edit's change is blurred by it (the generator's
sensor uses the same σ)."""
SHADED_BELOW = 0.6
"""A pixel darker than this share of its class's bright pixels (90th percentile of
brightness) is in shade: a building's shadow darkens ground to a third or half."""

_PLANTABLE_EXCLUDED = (int(LandCover.BUILDING), int(LandCover.WATER), NODATA_CODE)
_DEVELOPABLE = (int(LandCover.GRASS), int(LandCover.TREE), int(LandCover.BARE))


@dataclass(frozen=True)
class SurfaceEdit:
    """A scenario's edit of a land cover: the new classes and the roofs it changed."""

    landcover: np.ndarray  # uint8, after every intervention
    green_roof: np.ndarray  # bool: roofs covered with plants (still BUILDING)
    roof_albedo: np.ndarray  # float: asked broadband albedo of a cool roof, NaN elsewhere
    new_building_height: np.ndarray  # float: height (m) of a new building, NaN elsewhere


@dataclass(frozen=True)
class EditedInputs:
    """The observed inputs after a scenario: bands, land cover, and which pixels changed.

    ``landcover`` is what the classification sees after the edit (the features'
    input); ``roofs`` the roofs repainted or planted, which stay buildings for
    whoever counts buildings (flood exposure) although a planted roof looks like grass.
    """

    bands: dict[str, np.ndarray]
    landcover: np.ndarray
    changed: np.ndarray
    roofs: np.ndarray

    def buildings_landcover(self, before: np.ndarray) -> np.ndarray:
        """The land cover after the edit with every edited roof as it was in ``before``."""
        return np.where(self.roofs, before, self.landcover)


def selection_seed(scenario_sha256: str, index: int) -> np.random.SeedSequence:
    """The seed of one intervention's pixel choice: its scenario and its place in it."""
    return np.random.SeedSequence([int(scenario_sha256[:16], 16), index])


def selection_field(
    mask: np.ndarray, *, seed: np.random.SeedSequence, scale_px: float
) -> np.ndarray:
    """A smooth random field over ``mask``'s bounding box (−inf outside the mask).

    Drawn on the bounding box only, so it is the same whether the caller holds
    the whole scene or a window around the polygon.
    """
    field = np.full(mask.shape, -np.inf)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return field
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    box = smooth_noise(np.random.default_rng(seed), (int(r1 - r0), int(c1 - c0)), scale_px)
    field[r0:r1, c0:c1] = np.where(mask[r0:r1, c0:c1], box, -np.inf)
    return field


def choose_pixels(eligible: np.ndarray, count: int, score: np.ndarray) -> np.ndarray:
    """The ``count`` eligible pixels of highest score (ties: first in reading order)."""
    flat = np.flatnonzero(eligible)
    chosen = np.zeros(eligible.shape, bool)
    count = max(0, min(int(count), flat.size))
    if count:
        order = np.argsort(-score.ravel()[flat], kind="stable")
        chosen.ravel()[flat[order[:count]]] = True
    return chosen


def _share_count(share: float, total: int) -> int:
    return int(np.floor(min(max(share, 0.0), 1.0) * total + 0.5))


def _set_canopy(
    lc: np.ndarray,
    mask: np.ndarray,
    field: np.ndarray,
    target: float | None,
    change: float,
    *,
    fell: bool = True,
) -> None:
    """Trees planted (or, when ``fell``, felled to grass) until the plantable ground has
    the target share."""
    plantable = mask & ~np.isin(lc, _PLANTABLE_EXCLUDED)
    tree = plantable & (lc == int(LandCover.TREE))
    total, current = int(plantable.sum()), int(tree.sum())
    if total == 0:
        return
    share = target if target is not None else current / total + change
    wanted = _share_count(share, total)
    if wanted > current:
        score = field - ROAD_PENALTY * (lc == int(LandCover.ROAD))
        lc[choose_pixels(plantable & ~tree, wanted - current, score)] = int(LandCover.TREE)
    elif wanted < current and fell:
        lc[choose_pixels(tree, current - wanted, -field)] = int(LandCover.GRASS)


def edit_landcover(
    landcover: np.ndarray,
    intervention: Intervention,
    mask: np.ndarray,
    *,
    field: np.ndarray,
) -> np.ndarray:
    """The land cover after one intervention (a new array; roofs' looks are not land cover).

    ``field`` is :func:`selection_field` for this intervention: the pixel choice.
    """
    lc = landcover.copy()
    p, kind = intervention.params, intervention.kind
    if kind == "tree_planting":
        _set_canopy(lc, mask, field, p.get("canopy"), p.get(RELATIVE_CANOPY, 0.0))
    elif kind == "park":
        lc[mask & np.isin(lc, [int(LandCover.ROAD), int(LandCover.BARE)])] = int(LandCover.GRASS)
        # A park keeps the trees already there: its canopy is a floor, not a cap.
        _set_canopy(lc, mask, field, p["canopy"], 0.0, fell=False)
    elif kind == "depave":
        sealed = mask & (lc == int(LandCover.ROAD))
        lc[choose_pixels(sealed, _share_count(p["share"], int(sealed.sum())), field)] = int(
            LandCover.GRASS
        )
    elif kind == "develop":
        ground = mask & np.isin(
            lc, [int(c) for c in (LandCover.GRASS, LandCover.TREE, LandCover.BARE)]
        )
        total = int(ground.sum())
        n_built = _share_count(p["building_share"], total)
        n_sealed = _share_count(p["building_share"] + p["sealed_share"], total) - n_built
        built = choose_pixels(ground, n_built, field)
        sealed = choose_pixels(ground & ~built, n_sealed, field)
        lc[built] = int(LandCover.BUILDING)
        lc[sealed] = int(LandCover.ROAD)
    return lc


def edit_surface(
    landcover: np.ndarray,
    scenario: Scenario,
    masks: Sequence[np.ndarray],
    *,
    resolution: float,
    footprints: np.ndarray | None = None,
) -> SurfaceEdit:
    """Every intervention in order (a later one acts on what the earlier ones left).

    A roof intervention acts on the ``building`` pixels of ``landcover`` and,
    when given, on ``footprints`` (bool: the building footprints a scene
    carries), which also hold the dark roofs that imagery alone calls paving;
    a ground intervention (trees, park, depave, develop) then leaves those
    roofs alone, as it leaves the roofs imagery shows.
    """
    lc = landcover.copy()
    extra_roofs = np.zeros(lc.shape, bool) if footprints is None else np.asarray(footprints, bool)
    green = np.zeros(lc.shape, bool)
    albedo = np.full(lc.shape, np.nan)
    height = np.full(lc.shape, np.nan)
    for intervention, mask in zip(scenario.interventions, masks, strict=True):
        scale_px = CLUMP_SCALE_M.get(intervention.kind, 4.0) / resolution
        seed = selection_seed(scenario.sha256, intervention.index)
        field = selection_field(mask, seed=seed, scale_px=scale_px)
        roofs = mask & (
            (lc == int(LandCover.BUILDING)) | (extra_roofs & (lc != int(LandCover.WATER)))
        )
        if intervention.kind == "cool_roof":
            albedo[roofs] = intervention.params["albedo"]
            green[roofs] = False
        elif intervention.kind == "green_roof":
            count = _share_count(intervention.params["share"], int(roofs.sum()))
            planted = choose_pixels(roofs, count, field)
            green |= planted
            albedo[planted] = np.nan
        else:
            before = lc
            lc = edit_landcover(lc, intervention, mask & ~extra_roofs, field=field)
            new_building = (lc == int(LandCover.BUILDING)) & (before != int(LandCover.BUILDING))
            height[new_building] = intervention.params.get("height_m", np.nan)
    return SurfaceEdit(lc, green, albedo, height)


def class_spectra(bands: Mapping[str, np.ndarray], landcover: np.ndarray) -> dict[int, np.ndarray]:
    """The scene's own median reflectance (in :data:`BANDS` order) per land-cover class.

    Painting a changed pixel with its new class's median *in this scene* keeps
    the edit in the scene's radiometry (sensor, season, correction) — which is
    what lets one code path serve synthetic and imported real cities. New
    ground takes the median over all the class's pixels, in sun and shade as
    the city's ground is. A class with fewer than :data:`MIN_PIXELS_FOR_MEDIAN`
    valid pixels takes its generic spectrum (:data:`GENERIC_SPECTRA`).
    """
    stack = np.stack([np.asarray(bands[b], dtype=np.float64) for b in BANDS])
    valid = np.isfinite(stack).all(axis=0)
    spectra: dict[int, np.ndarray] = {}
    for code, generic in GENERIC_SPECTRA.items():
        pixels = valid & (landcover == code)
        if int(pixels.sum()) >= MIN_PIXELS_FOR_MEDIAN:
            spectra[code] = np.median(stack[:, pixels], axis=1)
        else:
            spectra[code] = np.asarray(generic, dtype=np.float64)
    return spectra


def sunlit_spectrum(
    bands: Mapping[str, np.ndarray], landcover: np.ndarray, code: int
) -> np.ndarray:
    """The median reflectance of a class's sunlit pixels (those not darker than
    :data:`SHADED_BELOW` of its bright ones), for surfaces that stand in the sun.

    A planted roof is above the street's shadows; in a dense city a third of
    the grass lies in building shadow, and the median over all of it paints a
    green roof 10–15 % too dark (its albedo 0.02 low). Falls back to
    :func:`class_spectra` for a class with too few pixels.
    """
    stack = np.stack([np.asarray(bands[b], dtype=np.float64) for b in BANDS])
    valid = np.isfinite(stack).all(axis=0)
    pixels = valid & (landcover == code)
    if int(pixels.sum()) < MIN_PIXELS_FOR_MEDIAN:
        return class_spectra(bands, landcover)[code]
    brightness = stack.sum(axis=0)
    sunlit = pixels & (brightness >= SHADED_BELOW * float(np.percentile(brightness[pixels], 90)))
    return np.asarray(np.median(stack[:, sunlit], axis=1))


PSF_REACH_PX = int(4.0 * SENSOR_PSF_SIGMA_PX + 0.5)
"""How far the blur reaches (scipy's gaussian kernel radius at its default truncation)."""


def _sensor_blur(before: np.ndarray, after: np.ndarray, receives: np.ndarray) -> np.ndarray:
    """``after`` as the sensor records it: the edit's change blurred by the PSF
    (:data:`SENSOR_PSF_SIGMA_PX`) and added to what was recorded, on the ``receives``
    pixels only (no-data stays no-data; water, which no intervention moves, stays as seen).

    Only the window the change can reach is filtered (the edits' bounding box and twice
    :data:`PSF_REACH_PX` around it: the filter reads zeros there, as on the whole scene),
    and only the pixels the blurred change reaches are clipped to [0, 1]: an untouched
    pixel keeps what was recorded, even a slightly negative reflectance of a real product.
    """
    change = np.where(receives[None], after - before, 0.0)
    rows, cols = np.nonzero((change != 0).any(axis=0))
    out = before.copy()
    if rows.size == 0:
        return out
    pad = 2 * PSF_REACH_PX
    r0, r1 = max(0, int(rows.min()) - pad), int(rows.max()) + pad + 1
    c0, c1 = max(0, int(cols.min()) - pad), int(cols.max()) + pad + 1
    window = (slice(None), slice(r0, r1), slice(c0, c1))
    blurred = np.stack(
        [
            ndimage.gaussian_filter(band, SENSOR_PSF_SIGMA_PX, mode="nearest")
            for band in change[window]
        ]
    )
    reached = receives[r0:r1, c0:c1][None] & (blurred != 0)
    seen = before[window]
    out[window] = np.where(reached, np.clip(seen + blurred, 0.0, 1.0), seen)
    return out


def apply_interventions(
    bands: Mapping[str, np.ndarray],
    landcover: np.ndarray,
    scenario: Scenario,
    masks: Sequence[np.ndarray],
    *,
    resolution: float | None = None,
    footprints: np.ndarray | None = None,
) -> EditedInputs:
    """Edit the observed inputs: land cover, and bands painted with the scene's own spectra.

    ``resolution`` (m) sets the clump size of the pixel choice; pass the
    scene's, as the generator does. Without it, it is taken from the first
    non-empty intervention's area over its pixel count. ``footprints``: the
    scene's building footprints, if it carries them (see :func:`edit_surface`).

    The edited land cover is what the land-cover classification sees after
    the edit, so that every feature built on it moves as on a real city: a
    repainted roof is a (bright) building, a planted roof looks like grass.
    The bands are what the sensor would record: a planted roof is sunlit grass
    (:func:`sunlit_spectrum`), and the change is blurred by the sensor's
    point-spread function, so the pixels beside an edit move a little too
    (they are in ``changed``).
    """
    res = resolution if resolution is not None else _resolution_from(scenario, masks)
    surface = edit_surface(landcover, scenario, masks, resolution=res, footprints=footprints)
    spectra = class_spectra(bands, landcover)
    out = {name: np.array(values, dtype=np.float64) for name, values in bands.items()}
    before = np.stack([out[b] for b in BANDS])
    stack = before.copy()
    valid = np.isfinite(stack).all(axis=0)
    recoloured = valid & (surface.landcover != landcover)
    for code, spectrum in spectra.items():
        where = recoloured & (surface.landcover == code)
        stack[:, where] = spectrum[:, None]
    green = valid & surface.green_roof
    if green.any():
        grass = sunlit_spectrum(bands, landcover, int(LandCover.GRASS))
        stack[:, green] = grass[:, None]
    cool = valid & np.isfinite(surface.roof_albedo)
    stack[:, cool] = scale_to_albedo(stack[:, cool], surface.roof_albedo[cool])
    edited = recoloured | green | cool
    if edited.any():
        stack = _sensor_blur(before, stack, valid & (landcover != int(LandCover.WATER)))
    for i, name in enumerate(BANDS):
        out[name] = stack[i]
    seen = surface.landcover.copy()
    seen[cool] = int(LandCover.BUILDING)
    seen[green] = int(LandCover.GRASS)
    moved = edited | (valid & (stack != before).any(axis=0))
    return EditedInputs(out, seen, moved, green | cool)


def _resolution_from(scenario: Scenario, masks: Sequence[np.ndarray]) -> float:
    for intervention, mask in zip(scenario.interventions, masks, strict=True):
        if mask.any():
            return float(np.sqrt(intervention.area_m2 / mask.sum()))
    return 1.0


__all__ = [
    "CLUMP_SCALE_M",
    "GENERIC_SPECTRA",
    "EditedInputs",
    "SurfaceEdit",
    "apply_interventions",
    "choose_pixels",
    "class_spectra",
    "edit_landcover",
    "edit_surface",
    "selection_field",
    "selection_seed",
    "sunlit_spectrum",
]

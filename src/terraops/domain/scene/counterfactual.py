"""The counterfactual city: a scenario applied to the generator's *true* layout.

A what-if answer is only as good as the truth it is checked against. The
generator renders the same city — same seed, same random draws, same noise —
with the scenario's interventions applied to its true land cover, through the
very pixel choice the what-if run applies to the observed inputs
(:func:`terraops.domain.whatif.interventions.edit_surface`). LST and flood
are then computed as for any city, so their difference from the baseline is
the true effect, spillover included.

Objects keep their ids (planted trees and new buildings belong to the block
they stand in), so the per-object texture and roof materials are drawn
exactly as in the baseline; only the surfaces the scenario changed look
different.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from terraops.domain.features import broadband_albedo
from terraops.domain.landcover import LandCover
from terraops.domain.scene.layout import Layout
from terraops.domain.scene.spectra import BANDS, ROOF_MATERIALS, ROOF_SHARES, RoofOverride
from terraops.domain.whatif.interventions import edit_surface
from terraops.domain.whatif.scenario import Scenario

PLANTED_CROWN_RADIUS_M = 4.0
"""A young street tree's crown: the rim darkening of planted clumps fades over this."""
NEW_ROOF_ALBEDO = float(
    ROOF_SHARES @ broadband_albedo(dict(zip(BANDS, ROOF_MATERIALS.T, strict=True)))
)
"""Albedo of a new building's roof (≈ 0.23): the city's roof mix on average.

New buildings stand on objects (blocks) drawn without them; the block's drawn
roof material could be the rare white one and make a whole development a cool
roof. The what-if edit paints new buildings with the scene's median roof, so
the truth uses the average roof too (a cool roof asked for later still wins)."""


def counterfactual_layout(
    layout: Layout,
    scenario: Scenario,
    masks: list[np.ndarray],
    *,
    resolution: float,
) -> tuple[Layout, RoofOverride]:
    """The layout after the scenario, and the roofs it repainted or planted."""
    surface = edit_surface(layout.landcover, scenario, masks, resolution=resolution)
    landcover = surface.landcover
    building = landcover == int(LandCover.BUILDING)
    new_height = np.isfinite(surface.new_building_height)
    height = np.where(new_height, surface.new_building_height, layout.building_height)
    tree = landcover == int(LandCover.TREE)
    planted = tree & (layout.landcover != int(LandCover.TREE))
    crown = layout.crown_position.astype(np.float64)
    if planted.any():
        inside_m = np.asarray(ndimage.distance_transform_edt(tree)) * resolution
        crown[planted] = np.clip(1.0 - inside_m[planted] / PLANTED_CROWN_RADIUS_M, 0.0, 1.0)
    edited = Layout(
        landcover=landcover,
        building_height=np.where(building, height, 0.0).astype(np.float32),
        object_id=layout.object_id,
        crown_position=np.where(tree, crown, 0.0).astype(np.float32),
    )
    new_roofs = building & new_height & ~np.isfinite(surface.roof_albedo) & ~surface.green_roof
    albedo = np.where(new_roofs, NEW_ROOF_ALBEDO, surface.roof_albedo)
    return edited, RoofOverride(albedo=albedo, vegetated=surface.green_roof)


__all__ = ["NEW_ROOF_ALBEDO", "PLANTED_CROWN_RADIUS_M", "counterfactual_layout"]

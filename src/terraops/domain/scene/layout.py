"""City layout: roads, blocks, parcels, buildings, trees — as land-cover pixels.

Everything is vectorised with Voronoi partitions computed by one Euclidean
distance transform each (``scipy.ndimage.distance_transform_edt`` with
``return_indices``): block seeds → blocks and the street network on their
borders; parcel seeds → parcels and building footprints; crown centres →
tree crowns. A smooth *urban intensity* field (high in the centre, low at
the fringe) decides between urban blocks and rural fields/forest, which
gives every scene an urban–rural gradient for the heat island.

Morphologies (typical European values):

* ``dense`` — old town: irregular blocks ~55 m across, 7 m streets, perimeter
  buildings 9–16 m deep, 12–24 m tall, small courtyards.
* ``sprawl`` — suburbs: a jittered, rotated grid of ~120 m × 70 m blocks,
  detached houses (10–16 m × 8–12 m, 5–9 m tall) on ~28 m parcels, gardens
  with trees.
* ``coastal`` — dense blocks near the centre, detached houses further out,
  sea along one edge (from the terrain).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from terraops.domain.landcover import LandCover
from terraops.domain.scene.noise import smooth_noise
from terraops.domain.scene.spec import SceneSpec
from terraops.domain.scene.terrain import Terrain

# Block types.
BUILT, PARK, PAVED_LOT, FIELD_GRASS, FIELD_BARE, FOREST = range(6)


@dataclass(frozen=True)
class Morphology:
    block_m: float
    street_m: float
    parcel_m: float
    urban_radius: float  # fraction of the scene side
    built_share: float
    park_share: float
    lot_share: float
    detached_below: float  # urban intensity under which blocks get detached houses
    garden_tree_p: float
    grid: bool


MORPHOLOGY_PARAMS: dict[str, Morphology] = {
    "dense": Morphology(55, 7, 13, 0.75, 0.84, 0.09, 0.07, 0.0, 0.12, grid=False),
    "sprawl": Morphology(120, 9, 28, 0.6, 0.82, 0.12, 0.03, 1.01, 0.14, grid=True),
    "coastal": Morphology(80, 8, 18, 0.65, 0.8, 0.12, 0.08, 0.55, 0.12, grid=False),
}


@dataclass(frozen=True)
class Layout:
    landcover: np.ndarray  # (n, n) uint8 LandCover codes
    building_height: np.ndarray  # (n, n) float32 m, 0 off buildings
    object_id: np.ndarray  # (n, n) int64: parcel / crown / block, for per-object texture
    crown_position: np.ndarray  # (n, n) float32: 0 at a crown centre … 1 at its edge


def _voronoi(points: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-point id of every pixel and the (row, col) of that point."""
    seeds = np.zeros(shape, bool)
    ids = np.full(shape, -1, dtype=np.int64)
    rows = np.clip(points[:, 0].astype(int), 0, shape[0] - 1)
    cols = np.clip(points[:, 1].astype(int), 0, shape[1] - 1)
    seeds[rows, cols] = True
    ids[rows, cols] = np.arange(len(points))
    _, (ir, ic) = ndimage.distance_transform_edt(~seeds, return_indices=True)
    return ids[ir, ic], np.stack([ir, ic])


def _poisson_points(rng: np.random.Generator, n: int, spacing_px: float) -> np.ndarray:
    count = max(4, int(n * n / (spacing_px * spacing_px)))
    return rng.uniform(0, n, size=(count, 2))


def _grid_points(rng: np.random.Generator, n: int, along_px: float, across_px: float) -> np.ndarray:
    """A jittered lattice rotated by a random angle (suburban street grids)."""
    theta = rng.uniform(0, np.pi / 2)
    reach = n * 1.5
    u = np.arange(-reach, reach, along_px)
    v = np.arange(-reach, reach, across_px)
    uu, vv = np.meshgrid(u, v)
    uu = uu + rng.normal(0, 0.08 * along_px, uu.shape)
    vv = vv + rng.normal(0, 0.08 * across_px, vv.shape)
    r = n / 2 + uu * np.cos(theta) - vv * np.sin(theta)
    c = n / 2 + uu * np.sin(theta) + vv * np.cos(theta)
    keep = (r >= 0) & (r < n) & (c >= 0) & (c < n)
    return np.stack([r[keep], c[keep]], axis=1)


def _streets(block_id: np.ndarray, half_width_px: float) -> np.ndarray:
    """Pixels within half a street width of a border between two blocks."""
    edge = np.zeros(block_id.shape, bool)
    edge[:, :-1] |= block_id[:, :-1] != block_id[:, 1:]
    edge[:-1, :] |= block_id[:-1, :] != block_id[1:, :]
    return np.asarray(ndimage.distance_transform_edt(~edge)) <= half_width_px


def _arterials(rng: np.random.Generator, n: int, centre: np.ndarray, half_px: float) -> np.ndarray:
    """Two or three straight main roads through the centre."""
    rr, cc = np.indices((n, n))
    mask = np.zeros((n, n), bool)
    for angle in rng.uniform(0, np.pi, int(rng.integers(2, 4))):
        offset = rng.normal(0, 0.05 * n)
        d = (rr - centre[0]) * np.cos(angle) - (cc - centre[1]) * np.sin(angle) - offset
        mask |= np.abs(d) <= half_px
    return mask


def make_layout(spec: SceneSpec, rng: np.random.Generator, terrain: Terrain) -> Layout:
    """Lay out streets, blocks, buildings and trees around the terrain's water."""
    n, res = spec.size, spec.resolution
    morph = MORPHOLOGY_PARAMS[spec.morphology]
    water = terrain.river | terrain.sea
    rr, cc = np.indices((n, n))

    centre = rng.uniform(0.3, 0.7, 2) * n
    radius = morph.urban_radius * n
    urban = np.exp(-(((rr - centre[0]) ** 2 + (cc - centre[1]) ** 2) / radius**2))
    urban = urban + 0.12 * smooth_noise(rng, (n, n), 0.08 * n)

    if morph.grid:
        seeds = _grid_points(rng, n, morph.block_m / res, 0.6 * morph.block_m / res)
    else:
        seeds = _poisson_points(rng, n, morph.block_m / res)
    block_id, _ = _voronoi(seeds, (n, n))
    seed_rc = np.clip(seeds.astype(int), 0, n - 1)
    block_urban = urban[seed_rc[:, 0], seed_rc[:, 1]]
    block_type = _block_types(rng, morph, block_urban)[block_id]
    is_urban = urban > 0.2
    road = (_streets(block_id, morph.street_m / 2 / res) & is_urban) | _arterials(
        rng, n, centre, 7.0 / res
    )
    road &= ~water
    free = ~road & ~water
    dist_street = np.asarray(ndimage.distance_transform_edt(free)) * res

    parcel_pts = _poisson_points(rng, n, morph.parcel_m / res)
    parcel_id, parcel_seed = _voronoi(parcel_pts, (n, n))
    n_parcels = len(parcel_pts)
    detached = (block_urban < morph.detached_below)[block_id]
    built = (block_type == BUILT) & free
    buildings, height = _buildings(
        rng, spec, morph, built, detached, dist_street, parcel_id, parcel_seed, rr, cc
    )

    crowns, crown_pos, crown_id = _trees(
        rng, spec, morph, block_type, built & ~buildings, detached, n_parcels
    )
    lc = np.full((n, n), int(LandCover.GRASS), dtype=np.uint8)
    ground_bare = (block_type == FIELD_BARE) | (block_type == PAVED_LOT)
    # Courtyards in dense blocks: some parcels are paved or bare.
    courtyard_bare = built & ~detached & (np.asarray(rng.random(n_parcels) < 0.35)[parcel_id])
    lc[ground_bare | courtyard_bare] = int(LandCover.BARE)
    forest = block_type == FOREST
    canopy_gaps = smooth_noise(rng, (n, n), 6.0 / res) < -1.1
    tree = (crowns | (forest & ~canopy_gaps)) & free & ~buildings
    lc[tree] = int(LandCover.TREE)
    lc[buildings] = int(LandCover.BUILDING)
    lc[road] = int(LandCover.ROAD)
    lc[water] = int(LandCover.WATER)

    object_id = np.where(buildings, parcel_id, block_id + n_parcels)
    object_id = np.where(crowns, crown_id + n_parcels + len(seeds), object_id)
    return Layout(
        landcover=lc,
        building_height=np.where(lc == int(LandCover.BUILDING), height, 0.0).astype(np.float32),
        object_id=object_id.astype(np.int64),
        crown_position=np.where(tree, crown_pos, 0.0).astype(np.float32),
    )


def _block_types(
    rng: np.random.Generator, morph: Morphology, block_urban: np.ndarray
) -> np.ndarray:
    """Draw a type per block: urban blocks are mostly built, rural ones fields/forest."""
    k = len(block_urban)
    draw = rng.random(k)
    urban_type = np.select(
        [
            draw < morph.built_share,
            draw < morph.built_share + morph.park_share,
            draw < morph.built_share + morph.park_share + morph.lot_share,
        ],
        [BUILT, PARK, PAVED_LOT],
        FIELD_GRASS,
    )
    draw2 = rng.random(k)
    rural_type = np.select([draw2 < 0.45, draw2 < 0.7], [FIELD_GRASS, FIELD_BARE], FOREST)
    return np.where(block_urban > 0.25, urban_type, rural_type)


def _buildings(
    rng: np.random.Generator,
    spec: SceneSpec,
    morph: Morphology,
    built: np.ndarray,
    detached: np.ndarray,
    dist_street: np.ndarray,
    parcel_id: np.ndarray,
    parcel_seed: np.ndarray,
    rr: np.ndarray,
    cc: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Perimeter blocks (dense) or detached houses (suburban) and their heights."""
    res = spec.resolution
    k = int(parcel_id.max()) + 1
    # Perimeter blocks: a ring of buildings 9–16 m deep along the street.
    depth = rng.uniform(9.0, 16.0, k)[parcel_id]
    empty = (rng.random(k) < 0.08)[parcel_id]
    perimeter = built & ~detached & (dist_street <= depth) & ~empty
    # Detached houses: a rotated rectangle around each parcel's seed point.
    theta = rng.uniform(0, np.pi, k)[parcel_id]
    half_len = rng.uniform(5.0, 8.0, k)[parcel_id] / res
    half_wid = rng.uniform(4.0, 6.0, k)[parcel_id] / res
    dr = rr - parcel_seed[0]
    dc = cc - parcel_seed[1]
    u = dr * np.cos(theta) + dc * np.sin(theta)
    v = -dr * np.sin(theta) + dc * np.cos(theta)
    house = (np.abs(u) <= half_len) & (np.abs(v) <= half_wid)
    house &= built & detached & (dist_street >= 3.0) & ~(rng.random(k) < 0.1)[parcel_id]
    tall = rng.uniform(12.0, 24.0, k) if spec.morphology == "dense" else rng.uniform(9.0, 18.0, k)
    low = rng.uniform(5.0, 9.0, k)
    height = np.where(detached, low[parcel_id], tall[parcel_id])
    return perimeter | house, height


def _trees(
    rng: np.random.Generator,
    spec: SceneSpec,
    morph: Morphology,
    block_type: np.ndarray,
    open_built: np.ndarray,
    detached: np.ndarray,
    n_parcels: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tree crowns (2–6 m radius) scattered with a density set by where they stand."""
    n, res = spec.size, spec.resolution
    pts = _poisson_points(rng, n, 7.0 / res)
    pr = np.clip(pts[:, 0].astype(int), 0, n - 1)
    pc = np.clip(pts[:, 1].astype(int), 0, n - 1)
    where_type = block_type[pr, pc]
    p_keep = np.select(
        [where_type == PARK, where_type == FOREST, where_type == FIELD_GRASS],
        [0.35, 0.0, 0.01],
        0.004,
    )
    in_yard = open_built[pr, pc]
    p_keep = np.where(in_yard & detached[pr, pc], morph.garden_tree_p * 2.5, p_keep)
    p_keep = np.where(in_yard & ~detached[pr, pc], 0.25, p_keep)
    keep = rng.random(len(pts)) < p_keep
    pts = pts[keep]
    if len(pts) == 0:
        zeros = np.zeros((n, n))
        return zeros.astype(bool), zeros, zeros.astype(np.int64)
    radius_px = rng.uniform(2.0, 6.0, len(pts)) / res
    crown_id, nearest = _voronoi(pts, (n, n))
    rr, cc = np.indices((n, n))
    dist = np.hypot(rr - nearest[0], cc - nearest[1])
    rel = dist / np.maximum(radius_px[crown_id], 0.5)
    return rel <= 1.0, np.minimum(rel, 1.0), crown_id

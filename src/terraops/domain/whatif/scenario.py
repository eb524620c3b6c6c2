"""Scenario files: a GeoJSON FeatureCollection of interventions, parsed strictly.

A planner's file is the one thing a what-if run trusts from outside, so every
feature is checked before anything is computed: its ``intervention`` must be
known, its parameters known and in range, its geometry a valid, non-empty
polygon that reaches the scene. Each refusal names the feature's index and
the field (:class:`~terraops.errors.InvalidScenarioError`), so the planner
can fix the right line.

The file's CRS comes from its ``crs`` member (the legacy named CRS of
GeoJSON 2008, e.g. ``urn:ogc:def:crs:EPSG::32633``) or is EPSG:4326 as
RFC 7946 says; geometries are reprojected to the scene's CRS here, so the
rest of the code works in scene metres. A polygon partly outside the scene is
clipped to it; one entirely outside is refused.

Parameters (shares are 0–1; a relative canopy change is a string "+0.3"):

* ``tree_planting``: ``canopy`` — target tree share of the plantable ground
  (not building, not water) or a change of the current share ("+0.3",
  "-0.1"; stored as ``canopy_change``).
* ``park``: paved and bare ground become grass; ``canopy`` (default 0.3) is
  the least tree share then reached on the plantable ground (trees already
  there stay).
* ``depave``: sealed ground (roads, car parks) becomes grass; ``share``
  (default 1) of it.
* ``cool_roof``: roofs reach a broadband ``albedo`` (default 0.6).
* ``green_roof``: a ``share`` (default 1) of roofs is covered with plants;
  the land cover stays building.
* ``develop``: ``building_share`` and ``sealed_share`` (sum ≤ 1) of the green
  and bare ground become buildings (``height_m``, default 12) and asphalt.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from rasterio.features import rasterize
from rasterio.transform import Affine
from shapely.geometry import MultiPolygon, Polygon, box, shape
from shapely.validation import explain_validity

from terraops.errors import InvalidScenarioError

INTERVENTION_KINDS: tuple[str, ...] = (
    "tree_planting",
    "park",
    "depave",
    "cool_roof",
    "green_roof",
    "develop",
)
DEFAULT_CRS = "EPSG:4326"
REQUIRED = math.nan
"""Marks a parameter without a default in :data:`PARAMETERS`."""
PARAMETERS: dict[str, dict[str, float]] = {
    "tree_planting": {"canopy": REQUIRED},
    "park": {"canopy": 0.3},
    "depave": {"share": 1.0},
    "cool_roof": {"albedo": 0.6},
    "green_roof": {"share": 1.0},
    "develop": {"building_share": REQUIRED, "sealed_share": REQUIRED, "height_m": 12.0},
}
"""Each intervention's parameters and their defaults (``REQUIRED``: none)."""
PARAMETER_RANGES: dict[str, tuple[float, float]] = {"height_m": (2.0, 300.0)}
"""Ranges of the parameters that are not shares (shares are 0–1)."""
METADATA_KEYS: tuple[str, ...] = ("intervention", "id", "name", "description")
"""Feature properties that are not parameters."""
RELATIVE_CANOPY = "canopy_change"
"""Where a relative ``canopy`` ("+0.3") is stored in :attr:`Intervention.params`."""
_HINT_KINDS = f"use one of: {', '.join(INTERVENTION_KINDS)}"


@dataclass(frozen=True)
class ScenarioLimits:
    """What one scenario may ask for (bounds the work of one what-if run)."""

    max_features: int = 50
    max_area_m2: float = 4_000_000.0
    """All polygons together, inside the scene (400 ha)."""


@dataclass(frozen=True)
class Intervention:
    """One validated feature: its kind, parameters and polygon in the scene CRS."""

    index: int
    id: str
    kind: str
    params: Mapping[str, float]
    geometry: Polygon | MultiPolygon
    area_m2: float


@dataclass(frozen=True)
class Scenario:
    """A validated scenario; ``sha256`` identifies the document it came from."""

    interventions: tuple[Intervention, ...]
    sha256: str
    source_crs: str


def scenario_bytes(document: bytes | str | Mapping[str, Any]) -> bytes:
    """The bytes the sha256 is taken of: as given, or canonical JSON for a mapping."""
    if isinstance(document, bytes):
        return document
    if isinstance(document, str):
        return document.encode("utf-8")
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return canonical.encode("utf-8")


def parse_scenario(
    document: bytes | str | Mapping[str, Any],
    *,
    scene_crs: str,
    scene_bounds: tuple[float, float, float, float],
    limits: ScenarioLimits | None = None,
) -> Scenario:
    """Validate a scenario document against a scene (see the module docstring)."""
    limits = limits or ScenarioLimits()
    raw = scenario_bytes(document)
    parsed = _load(raw) if not isinstance(document, Mapping) else document
    features = _features(parsed, limits)
    source = _source_crs(parsed)
    target = _crs(scene_crs, field="scene crs")
    to_scene = None if source == target else Transformer.from_crs(source, target, always_xy=True)
    scene_box = box(*scene_bounds)
    interventions: list[Intervention] = []
    total_area = 0.0
    for index, feature in enumerate(features):
        intervention = _intervention(index, feature, to_scene, scene_box)
        total_area += intervention.area_m2
        if total_area > limits.max_area_m2:
            raise InvalidScenarioError(
                f"the polygons cover {total_area / 1e4:.1f} ha up to this one, more than the "
                f"{limits.max_area_m2 / 1e4:g} ha one scenario may change",
                feature_index=index,
                field="geometry",
                hint="split the scenario into several smaller ones",
            )
        interventions.append(intervention)
    return Scenario(tuple(interventions), hashlib.sha256(raw).hexdigest(), source.to_string())


def _load(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidScenarioError(
            f"not valid JSON ({exc})", hint="a scenario is a GeoJSON FeatureCollection"
        ) from None


def _features(parsed: Any, limits: ScenarioLimits) -> Sequence[Any]:
    if not isinstance(parsed, Mapping) or parsed.get("type") != "FeatureCollection":
        raise InvalidScenarioError(
            "must be a GeoJSON FeatureCollection",
            field="type",
            hint='{"type": "FeatureCollection", "features": [...]}',
        )
    features = parsed.get("features")
    if not isinstance(features, list) or not features:
        raise InvalidScenarioError(
            "needs a non-empty list of features", field="features", hint="draw at least one polygon"
        )
    if len(features) > limits.max_features:
        raise InvalidScenarioError(
            f"{len(features)} features, more than the {limits.max_features} one scenario may have",
            feature_index=limits.max_features,
            field="features",
            hint="split the scenario into several smaller ones",
        )
    return features


def _crs(value: Any, *, field: str, index: int | None = None) -> CRS:
    try:
        return CRS.from_user_input(value)
    except (CRSError, TypeError, ValueError):
        raise InvalidScenarioError(
            f"unknown CRS {str(value)[:80]!r}",
            feature_index=index,
            field=field,
            hint="e.g. EPSG:4326 or urn:ogc:def:crs:EPSG::32633",
        ) from None


def _source_crs(parsed: Mapping[str, Any]) -> CRS:
    """The file's CRS: the legacy named ``crs`` member, else EPSG:4326."""
    member = parsed.get("crs")
    if member is None:
        return CRS.from_user_input(DEFAULT_CRS)
    properties = member.get("properties") if isinstance(member, Mapping) else None
    name = properties.get("name") if isinstance(properties, Mapping) else None
    if not isinstance(name, str) or member.get("type") != "name":
        raise InvalidScenarioError(
            "must be a named CRS",
            field="crs",
            hint='{"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}}',
        )
    return _crs(name, field="crs")


def _intervention(
    index: int, feature: Any, to_scene: Transformer | None, scene_box: Polygon
) -> Intervention:
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        raise InvalidScenarioError("must be a GeoJSON Feature", feature_index=index, field="type")
    properties = feature.get("properties")
    if not isinstance(properties, Mapping):
        raise InvalidScenarioError(
            "needs properties with an 'intervention'", feature_index=index, field="properties"
        )
    kind = properties.get("intervention")
    if kind not in INTERVENTION_KINDS:
        raise InvalidScenarioError(
            f"unknown intervention {str(kind)[:40]!r}",
            feature_index=index,
            field="intervention",
            hint=_HINT_KINDS,
        )
    params = _params(index, str(kind), properties)
    geometry = _geometry(index, feature.get("geometry"), to_scene, scene_box)
    given_id = properties.get("id", feature.get("id"))
    feature_id = str(given_id) if given_id is not None else str(index)
    return Intervention(index, feature_id, str(kind), params, geometry, float(geometry.area))


def _params(index: int, kind: str, properties: Mapping[str, Any]) -> dict[str, float]:
    """Known parameters only, each in range; defaults filled in."""
    allowed = PARAMETERS[kind]
    for key in properties:
        if key not in allowed and key not in METADATA_KEYS:
            raise InvalidScenarioError(
                f"unknown parameter for {kind}",
                feature_index=index,
                field=str(key)[:40],
                hint=f"{kind} takes: {', '.join(allowed)}",
            )
    params: dict[str, float] = {}
    for key, default in allowed.items():
        value = properties.get(key)
        if value is None and math.isnan(default):
            raise InvalidScenarioError(
                f"{kind} needs {key!r}", feature_index=index, field=key, hint="a share 0–1"
            )
        if kind == "tree_planting" and isinstance(value, str):
            params[RELATIVE_CANOPY] = _relative(index, key, value)
            continue
        params[key] = _number(index, key, default if value is None else value)
    if kind == "develop" and params["building_share"] + params["sealed_share"] > 1.0 + 1e-9:
        raise InvalidScenarioError(
            "building_share + sealed_share must not exceed 1",
            feature_index=index,
            field="sealed_share",
        )
    return params


def _number(index: int, key: str, value: Any) -> float:
    low, high = PARAMETER_RANGES.get(key, (0.0, 1.0))
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not low <= value <= high:
        raise InvalidScenarioError(
            f"must be a number between {low:g} and {high:g}, got {str(value)[:40]!r}",
            feature_index=index,
            field=key,
        )
    return float(value)


def _relative(index: int, key: str, text: str) -> float:
    """A signed change of a share: "+0.3" or "-0.1" (between −1 and +1)."""
    stripped = text.strip()
    try:
        change = float(stripped) if stripped[:1] in "+-" and stripped[1:] else math.nan
    except ValueError:
        change = math.nan
    if not (math.isfinite(change) and -1.0 <= change <= 1.0):
        raise InvalidScenarioError(
            f'must be a share 0–1 or a signed change like "+0.3", got {text[:40]!r}',
            feature_index=index,
            field=key,
        )
    return change


def _geometry(
    index: int, raw: Any, to_scene: Transformer | None, scene_box: Polygon
) -> Polygon | MultiPolygon:
    """A valid, non-empty (multi)polygon in the scene CRS, clipped to the scene."""
    if not isinstance(raw, Mapping) or raw.get("type") not in ("Polygon", "MultiPolygon"):
        kind = raw.get("type") if isinstance(raw, Mapping) else type(raw).__name__
        raise InvalidScenarioError(
            f"must be a Polygon or MultiPolygon, got {str(kind)[:40]}",
            feature_index=index,
            field="geometry",
        )
    try:
        geometry = shape(raw)
    except (ValueError, TypeError, AttributeError, IndexError, shapely.errors.ShapelyError):
        raise InvalidScenarioError(
            "has malformed coordinates", feature_index=index, field="geometry"
        ) from None
    if geometry.is_empty or not np.isfinite(shapely.get_coordinates(geometry)).all():
        raise InvalidScenarioError(
            "is empty or has non-finite coordinates", feature_index=index, field="geometry"
        )
    if not geometry.is_valid:
        raise InvalidScenarioError(
            f"is not a valid polygon ({explain_validity(geometry)})",
            feature_index=index,
            field="geometry",
            hint="remove self-intersections (e.g. a bow-tie) and repeated rings",
        )
    if to_scene is not None:
        geometry = shapely.transform(geometry, _projector(to_scene), interleaved=False)
    inside = geometry.intersection(scene_box)
    if inside.is_empty or inside.area <= 0:
        raise InvalidScenarioError(
            "lies outside the scene",
            feature_index=index,
            field="geometry",
            hint=f"the scene covers {tuple(round(v) for v in scene_box.bounds)} in its CRS",
        )
    polygons = [g for g in getattr(inside, "geoms", [inside]) if isinstance(g, Polygon)]
    return polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)


def _projector(to_scene: Transformer) -> Any:
    def project(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        px, py = to_scene.transform(x, y)
        return np.asarray(px), np.asarray(py)

    return project


def rasterise(
    scenario: Scenario,
    *,
    shape: tuple[int, int],
    origin: tuple[float, float],
    resolution: float,
) -> list[np.ndarray]:
    """One bool mask per intervention: pixels whose centre lies inside its polygon.

    The grid is north-up with its top-left corner at ``origin`` (scene CRS).
    """
    transform = Affine(resolution, 0.0, origin[0], 0.0, -resolution, origin[1])
    masks = []
    for intervention in scenario.interventions:
        burnt = rasterize(
            [(intervention.geometry, 1)], out_shape=shape, transform=transform, dtype="uint8"
        )
        masks.append(burnt.astype(bool))
    return masks


__all__ = [
    "DEFAULT_CRS",
    "INTERVENTION_KINDS",
    "PARAMETERS",
    "RELATIVE_CANOPY",
    "Intervention",
    "Scenario",
    "ScenarioLimits",
    "parse_scenario",
    "rasterise",
    "scenario_bytes",
]

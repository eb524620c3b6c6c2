"""Map layers: what the catalogue records about a raster or vector product.

A :class:`Layer` is a catalogue entry, never a path taken from a request: the
tile server looks a layer up by its id and reads only the file the catalogue
names. Each layer carries its presentation (colormap, rescale range, legend,
unit) and its **lineage** — the model name/version/run that made it, the scene
and the scenario parameters — so a map, a tile header, a STAC item and a
GeoJSON feature can all say where a value came from.

Pure data and rules: no I/O here (the catalogue file lives in
:mod:`terraops.adapters.catalogue`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from terraops.errors import InvalidInputError

LayerKind = Literal["raster", "vector"]

#: Layer ids are lowercase slugs: no slash, no dot, nothing a file system or a
#: URL could read as a path. Checked where ids are made *and* where requests
#: name them, so an id can never smuggle ``..``, ``file://`` or ``/vsicurl/``.
LAYER_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,99}$"
_LAYER_ID = re.compile(LAYER_ID_PATTERN)
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")


def is_layer_id(text: str) -> bool:
    return bool(_LAYER_ID.fullmatch(text))


def slug(text: str) -> str:
    """A layer-id-safe version of a name (``"City 1 (dense)"`` → ``"city-1-dense"``)."""
    out = _SLUG_JUNK.sub("-", text.lower()).strip("-")
    return out[:60] or "layer"


def layer_id(*parts: str) -> str:
    """Join slugged parts into a valid id (``layer_id("uhi", "lst", "city1")``)."""
    candidate = "-".join(slug(p) for p in parts if p)
    if not is_layer_id(candidate):  # pragma: no cover - slug() only yields valid ids
        raise InvalidInputError(f"cannot make a layer id from {parts!r}")
    return candidate


@dataclass(frozen=True)
class Layer:
    """One catalogue entry.

    ``group`` is the map view a layer belongs to (``imagery``, ``heat``,
    ``flood``, ...). ``colormap`` is a rio-tiler colormap name (``None`` for
    RGB imagery, whose bands are shown as they are); ``rescale`` maps values
    to the colormap's ends. ``fingerprint`` is a content hash of the file: with
    the model version it keys the tile cache, so a replaced file can never be
    served from a stale cache.
    """

    id: str
    title: str
    kind: LayerKind
    group: str
    role: str
    path: str
    unit: str
    legend: str
    bounds: tuple[float, float, float, float]  # WGS 84: west, south, east, north
    crs: str
    fingerprint: str
    created_at: str
    colormap: str | None = None
    rescale: tuple[float, float] | None = None
    lineage: Mapping[str, Any] = field(default_factory=dict)
    stats: Mapping[str, Any] = field(default_factory=dict)
    features_path: str | None = None
    """For a model's prediction raster: a parquet of the model inputs of every cell
    (``row``, ``col`` + the service's features), so a point query can show them and
    ask the live API for the current champion's answer at the same place."""

    def __post_init__(self) -> None:
        if not is_layer_id(self.id):
            raise InvalidInputError(
                f"invalid layer id {self.id!r}",
                hint="ids are lowercase letters, digits, '-' and '_' (at most 100 characters)",
            )
        if self.kind not in ("raster", "vector"):
            raise InvalidInputError(f"layer kind must be raster or vector, got {self.kind!r}")

    @property
    def model(self) -> Mapping[str, Any]:
        """The model that computed the layer (empty for imagery)."""
        model = self.lineage.get("model")
        return model if isinstance(model, Mapping) else {}

    @property
    def model_version(self) -> int | None:
        version = self.model.get("version")
        return int(version) if version is not None else None

    @property
    def cache_token(self) -> str:
        """What must change for a cached tile of this layer to become stale."""
        return f"{self.id}:{self.model_version or 0}:{self.fingerprint}"

    def lineage_headers(self) -> dict[str, str]:
        """``X-Layer-*`` / ``X-Model-*`` response headers (ASCII only)."""
        headers = {"X-Layer-Id": self.id, "X-Layer-Fingerprint": self.fingerprint}
        model = self.model
        if model:
            headers["X-Model-Name"] = str(model.get("name", ""))
            headers["X-Model-Version"] = str(model.get("version", ""))
            if model.get("run_id"):
                headers["X-Model-Run-Id"] = str(model["run_id"])
        return headers

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["bounds"] = list(self.bounds)
        out["rescale"] = list(self.rescale) if self.rescale else None
        out["lineage"] = dict(self.lineage)
        out["stats"] = dict(self.stats)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layer:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["bounds"] = tuple(float(v) for v in values["bounds"])
        if values.get("rescale") is not None:
            lo, hi = values["rescale"]
            values["rescale"] = (float(lo), float(hi))
        return cls(**values)

    def with_path(self, path: str, fingerprint: str) -> Layer:
        return replace(self, path=path, fingerprint=fingerprint)

"""The layer catalogue: ids, locked atomic writes, missing files reported (not crashes)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from terraops.adapters.catalogue import LayerCatalogue, file_fingerprint
from terraops.domain.layers import Layer, is_layer_id, layer_id, slug
from terraops.errors import InvalidInputError, NotFoundError


def make_layer(path: Path, lid: str = "uhi-lst-city1", version: int = 2) -> Layer:
    path.write_bytes(b"not really a tif, but a file")
    return Layer(
        id=lid,
        title="LST",
        kind="raster",
        group="heat",
        role="prediction",
        path=str(path),
        unit="°C",
        legend="LST",
        bounds=(10.0, 50.0, 10.1, 50.1),
        crs="EPSG:32632",
        fingerprint=file_fingerprint(path),
        created_at="2026-11-27T00:00:00+00:00",
        colormap="rdylbu_r",
        rescale=(20.0, 40.0),
        lineage={"model": {"name": "uhi", "version": version, "run_id": "abc"}},
    )


@pytest.mark.parametrize(
    "text",
    ["../etc/passwd", "a/b", "file://x", "/vsicurl/http://x", "x.vrt", "A", "", "-x", "a" * 101],
)
def test_layer_ids_cannot_name_a_path(text: str) -> None:
    assert not is_layer_id(text)


def test_slugs_make_valid_ids() -> None:
    assert slug("City 1 (dense)") == "city-1-dense"
    assert is_layer_id(layer_id("uhi", "LST", "../../etc"))


def test_layer_refuses_an_invalid_id(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        make_layer(tmp_path / "f.tif", lid="../x")


def test_add_get_replace_remove(tmp_path: Path) -> None:
    catalogue = LayerCatalogue(tmp_path / "layers")
    assert catalogue.layers() == []
    layer = catalogue.add(make_layer(tmp_path / "a.tif"))
    assert catalogue.get(layer.id) == layer
    assert layer.cache_token.startswith("uhi-lst-city1:2:")
    assert layer.lineage_headers()["X-Model-Version"] == "2"
    catalogue.add(make_layer(tmp_path / "a.tif", version=3))  # same id: replaced
    assert [entry.model_version for entry in catalogue.layers()] == [3]
    catalogue.remove(layer.id)
    with pytest.raises(NotFoundError):
        catalogue.get(layer.id)
    with pytest.raises(NotFoundError):
        catalogue.remove(layer.id)


def test_a_removed_file_is_reported_not_a_crash(tmp_path: Path) -> None:
    catalogue = LayerCatalogue(tmp_path / "layers")
    catalogue.add(make_layer(tmp_path / "a.tif"))
    (tmp_path / "a.tif").unlink()
    (status,) = catalogue.statuses()
    assert not status.available and "missing" in (status.problem or "")
    assert status.to_dict()["available"] is False
    with pytest.raises(NotFoundError, match="file is missing"):
        catalogue.get_available("uhi-lst-city1")


def test_unknown_and_malformed_ids_are_not_found(tmp_path: Path) -> None:
    catalogue = LayerCatalogue(tmp_path / "layers")
    for text in ("nope", "../../etc/passwd", "%2e%2e"):
        with pytest.raises(NotFoundError):
            catalogue.get(text)


def test_a_running_reader_sees_layers_added_by_another_writer(tmp_path: Path) -> None:
    reader = LayerCatalogue(tmp_path / "layers")
    assert reader.layers() == []
    LayerCatalogue(tmp_path / "layers").add(make_layer(tmp_path / "a.tif"))
    assert [layer.id for layer in reader.layers()] == ["uhi-lst-city1"]


def test_a_corrupt_catalogue_is_a_clear_error(tmp_path: Path) -> None:
    catalogue = LayerCatalogue(tmp_path / "layers")
    catalogue.add(make_layer(tmp_path / "a.tif"))
    catalogue.path.write_text("{not json")
    with pytest.raises(InvalidInputError, match="unreadable"):
        catalogue.layers()


def _add_many(args: tuple[str, int]) -> None:
    root, worker = args
    catalogue = LayerCatalogue(Path(root) / "layers")
    for i in range(10):
        path = Path(root) / f"w{worker}-{i}.tif"
        catalogue.add(make_layer(path, lid=f"w{worker}-{i}"))


def test_concurrent_writers_in_separate_processes_lose_nothing(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_add_many, [(str(tmp_path), w) for w in range(4)])
    ids = {layer.id for layer in LayerCatalogue(tmp_path / "layers").layers()}
    assert len(ids) == 40
    stored = json.loads((tmp_path / "layers" / "catalogue.json").read_text())
    assert len(stored["layers"]) == 40

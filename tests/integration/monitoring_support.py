"""Helpers for the monitoring tests: extra tiny scenes and a deliberately bad model."""

from __future__ import annotations

import shutil
from pathlib import Path

from terraops.settings import Settings


def make_scene(
    root: Path, name: str, seed: int, morphology: str, reference_c: float | None = None
) -> Path:
    """A 256 px, 4 m tiny city (as the session's ``tiny_scenes``), made once per folder."""
    from terraops.pipelines.scenes.generate import generate_scene

    out = root / name
    if not (out / "scene.json").is_file():
        generate_scene(
            out,
            seed=seed,
            size=256,
            resolution=4.0,
            morphology=morphology,
            reference_temperature_c=reference_c,
        )
    return out


def register_shifted_copy(
    settings: Settings, service: str, version: int, tmp: Path, shift: float
) -> int:
    """A new version of the same run whose every prediction is ``shift`` higher.

    The first tree's leaf values are moved by ``shift`` (``Booster.set_leaf_output``),
    so the model loads, predicts finite values and carries the same run metrics —
    a release that is wrong in a way only live data (or a shared evaluation set)
    can reveal.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    original = client.get_model_version(service, str(version))
    source = client.get_model_version_download_uri(service, str(version))
    shifted = tmp / f"shifted-{service}-{version}-{shift:g}"
    shutil.copytree(Path(source.removeprefix("file://")), shifted)
    import lightgbm

    from terraops.adapters.model_bundle import booster_file, read_model_metadata

    model_file = booster_file(shifted, read_model_metadata(shifted))
    assert model_file is not None and model_file.is_file()
    booster = lightgbm.Booster(model_file=str(model_file))
    leaves = booster.dump_model()["tree_info"][0]["num_leaves"]
    for leaf in range(leaves):
        booster.set_leaf_output(0, leaf, booster.get_leaf_output(0, leaf) + shift)
    booster.save_model(str(model_file))
    created = client.create_model_version(service, str(shifted), run_id=original.run_id)
    return int(created.version)

"""Fixtures shared by every test folder.

Tests never touch the developer's ``.terraops``: each gets a home under pytest's
tmp folder. Scenes are tiny and made by code (seeded), so every fixture is
deterministic and fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from terraops.settings import Settings

# Keep MLflow from writing ./mlruns or phoning home from any test.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a private, empty home."""
    return Settings(home=tmp_path / "home")


@pytest.fixture(scope="session")
def tiny_scenes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two small synthetic cities (different seeds and morphologies)."""
    from terraops.pipelines.scenes import generate_scene

    root = tmp_path_factory.mktemp("scenes")
    dirs = []
    for seed, morphology in ((1, "dense"), (2, "sprawl")):
        out = root / f"city{seed}"
        generate_scene(out, seed=seed, size=256, resolution=4.0, morphology=morphology)
        dirs.append(out)
    return dirs

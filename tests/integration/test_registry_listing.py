"""Listing versions straight from the SQLite store gives MLflow's own answer, without MLflow."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from terraops.adapters.model_versions import read_sqlite_versions, sqlite_store_path
from terraops.adapters.registry import ModelRegistry
from terraops.settings import Settings

pytestmark = pytest.mark.integration


def test_sqlite_listing_equals_mlflow(home_settings: Settings) -> None:
    registry = ModelRegistry(home_settings)
    registry.set_alias("uhi", "champion", 1)
    registry.set_alias("uhi", "challenger", 2)
    registry._client.set_model_version_tag("uhi", "2", "terraops.note", "second")
    fast = read_sqlite_versions(home_settings.tracking_uri, "uhi")
    assert fast is not None and [v.version for v in fast] == [1, 2]
    # The same rows through MLflow's client (the path every non-SQLite store takes).
    assert fast == sorted(registry._versions("uhi"), key=lambda v: v.version)
    assert fast[1].aliases == ["challenger"] and fast[1].tags["terraops.note"] == "second"
    assert fast[0].metrics and fast[0].params
    assert read_sqlite_versions(home_settings.tracking_uri, "no-such-model") == []


def test_unknown_schema_falls_back_to_mlflow(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE unrelated (x INTEGER)").connection.commit()
    assert sqlite_store_path(f"sqlite:///{path}") == path
    assert read_sqlite_versions(f"sqlite:///{path}", "uhi") is None
    assert read_sqlite_versions("http://127.0.0.1:5000", "uhi") is None
    assert read_sqlite_versions(f"sqlite:///{tmp_path / 'absent.db'}", "uhi") == []


def test_models_list_imports_neither_mlflow_nor_lightgbm(home_settings: Settings) -> None:
    """What keeps ``terraops models list`` quick: it answers without the heavy stacks."""
    probe = (
        "import sys; from typer.testing import CliRunner; from terraops.cli.main import app; "
        "r = CliRunner().invoke(app, ['models', 'list', 'uhi', '--json']); "
        "assert r.exit_code == 0, r.output; assert '\"version\": 2' in r.output, r.output; "
        "print(sorted(m for m in ('mlflow', 'lightgbm', 'pandas', 'rasterio', 'torch') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={"TERRAOPS_HOME": str(home_settings.home_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_help_starts_without_the_array_stack(tmp_path: Path) -> None:
    """``terraops --help`` (and every command's option list) loads no numpy, MLflow,
    pandas or GDAL: what it shows must not pay for what only the work needs."""
    probe = (
        "import sys; from typer.testing import CliRunner; from terraops.cli.main import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('numpy', 'mlflow', 'pandas', 'rasterio', 'torch') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={"TERRAOPS_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"

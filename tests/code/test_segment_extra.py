"""A core install (no ``segment`` extra) says what to install instead of an ImportError.

The extra is taken away from the *child* process only: a ``sitecustomize`` on its
PYTHONPATH wraps the import system's finders so that they find nothing named
torch, onnx, onnxruntime or onnxscript. ``import torch`` then raises
ModuleNotFoundError and ``importlib.util.find_spec("torch")`` returns None,
exactly as on a machine where ``pip install -e .`` left them out. (Setting
``sys.modules["torch"] = None`` would not do: SciPy's array-API layer reads
``sys.modules["torch"]`` and breaks on the None.) The real core install, a
fresh venv without torch, is checked by hand; see the README's install notes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from serving_support import RunningProcess, wait_until
from terraops.extras import EXTRA_MODULES, SEGMENT
from terraops.settings import Settings

INSTALL_HINT = "pip install 'terraops[segment]'"

# The child's sitecustomize: every meta-path finder, wrapped, finds none of HIDDEN.
HIDER = """import sys

HIDDEN = {names}


class _Hide:
    def __init__(self, inner):
        self._inner = inner

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            return None
        return self._inner.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(self._inner, attr)


sys.meta_path[:] = [_Hide(finder) for finder in sys.meta_path]
"""


@pytest.fixture
def without_segment_extra(tmp_path: Path) -> dict[str, str]:
    """Environment additions that make a child Python lack the segment extra."""
    folder = tmp_path / "no-segment-extra"
    folder.mkdir()
    names = set(EXTRA_MODULES[SEGMENT])
    (folder / "sitecustomize.py").write_text(HIDER.format(names=names))
    pythonpath = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": pythonpath}


def _terraops(args: list[str], env: dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "terraops.cli.main", *args],
        env={**os.environ, **env, "TERRAOPS_HOME": str(home), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_blocker_really_hides_torch(without_segment_extra: dict[str, str], tmp_path: Path) -> None:
    """The premise: in the child, torch cannot be imported (else the tests below prove nothing)."""
    res = subprocess.run(
        [sys.executable, "-c", "import torch"],
        env={**os.environ, **without_segment_extra},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0 and "ModuleNotFoundError" in res.stderr, res.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["segment", "train", "--scenes", "SCENE", "--epochs", "1"],
        ["segment", "predict", "--scene", "SCENE", "--no-layers"],
    ],
    ids=["train", "predict"],
)
def test_segment_cli_without_extra_says_what_to_install(
    args: list[str],
    without_segment_extra: dict[str, str],
    tiny_scenes: list[Path],
    tmp_path: Path,
) -> None:
    args = [str(tiny_scenes[0]) if a == "SCENE" else a for a in args]
    res = _terraops(args, without_segment_extra, tmp_path / "home")
    assert res.returncode == 1, res.stdout + res.stderr
    assert INSTALL_HINT in res.stderr, res.stderr
    assert "torch" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "home" / "layers").exists()  # nothing written


def test_core_cli_runs_without_extra(without_segment_extra: dict[str, str], tmp_path: Path) -> None:
    """The core CLI (help, the tabular services' commands) loads with no torch at all."""
    res = _terraops(["--help"], without_segment_extra, tmp_path / "home")
    assert res.returncode == 0, res.stderr
    assert "train" in res.stdout and "segment" in res.stdout


@pytest.mark.integration
def test_segment_api_without_extra_is_503_with_install_hint(
    without_segment_extra: dict[str, str],
    start_server: Callable[..., RunningProcess],
    settings: Settings,
) -> None:
    """A real server without the extra: /v1/segment answers 503 and names the extra;
    the rest of the API is up."""
    server = start_server(settings, ready=False, **without_segment_extra)
    wait_until(
        lambda: httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200,
        90,
        "server up",
        server,
    )
    files = {"image": ("tiny.tif", b"II*\x00" + bytes(64), "image/tiff")}
    res = httpx.post(f"{server.url}/v1/segment", files=files, timeout=30)
    assert res.status_code == 503, res.text
    body = res.json()
    assert body["error"] == "extra_not_installed", body
    assert INSTALL_HINT in body["hint"] and "torch" in body["message"], body
    assert "ImportError" not in server.log.read_text()

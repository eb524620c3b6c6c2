"""``--verbose``'s time split: imports, phases and work add up, and nothing is timed otherwise."""

from __future__ import annotations

import builtins
import importlib
import sys
import time

from typer.testing import CliRunner

from terraops import timing
from terraops.cli.main import app
from terraops.settings import Settings


def test_phase_is_a_no_op_without_a_clock() -> None:
    with timing.phase("load model"):
        pass
    assert builtins.__import__ is timing._ORIGINAL_IMPORT


def test_imports_phases_and_work_add_up() -> None:
    clock = timing.start_clock()
    try:
        with timing.phase("load model"):
            time.sleep(0.05)
            sys.modules.pop("this", None)
            importlib.invalidate_caches()
            __import__("this")  # an import inside a phase counts as an import
        time.sleep(0.02)
        parts = clock.summary(startup_s=0.3)
    finally:
        timing.stop_clock()
    assert builtins.__import__ is timing._ORIGINAL_IMPORT
    assert list(parts) == ["start-up", "imports", "load model", "work"]
    assert parts["imports"] > 0 and 0.045 <= parts["load model"] < 0.5
    assert parts["work"] >= 0.015
    assert abs(sum(parts.values()) - 0.3 - clock.elapsed_s()) < 0.01


def test_cli_verbose_prints_the_split(settings: Settings) -> None:
    result = CliRunner().invoke(app, ["--verbose", "models", "list", "uhi"], obj=settings)
    assert result.exit_code == 0, result.output
    assert "time: start-up" in result.output and "· work " in result.output
    assert builtins.__import__ is timing._ORIGINAL_IMPORT

"""Where a command's seconds go: Python imports, model loading, and the work itself.

A command such as ``terraops whatif`` spends seconds importing MLflow, LightGBM and
the GDAL stack and loading a model before it does a second of work; ``--verbose``
says how much of each, so that a user knows what a long-running server would save
them. Nothing is measured unless a clock was started (the CLI's ``--verbose``):

- imports are timed by wrapping ``builtins.__import__`` for the clock's life, counting
  only the outermost import of each chain (the nested ones are inside it);
- a library step marks a phase with :func:`phase` (``"load model"``); a phase's time
  leaves out the imports made inside it, so the parts add up to the whole;
- the rest of the command's time is its work.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_ORIGINAL_IMPORT = builtins.__import__


@dataclass
class PhaseClock:
    """Seconds spent per phase since :func:`start_clock`."""

    started: float = field(default_factory=time.perf_counter)
    imports_s: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    _nesting: threading.local = field(default_factory=threading.local)

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def summary(self, startup_s: float | None = None) -> dict[str, float]:
        """Seconds by part: start-up (before the clock), imports, each phase, work."""
        parts: dict[str, float] = {}
        if startup_s is not None:
            parts["start-up"] = startup_s
        parts["imports"] = self.imports_s
        parts.update(self.phases)
        parts["work"] = max(0.0, self.elapsed_s() - self.imports_s - sum(self.phases.values()))
        return parts


_clock: PhaseClock | None = None


def _timed_import(clock: PhaseClock) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        if getattr(clock._nesting, "inside", False):
            return _ORIGINAL_IMPORT(*args, **kwargs)
        clock._nesting.inside = True
        began = time.perf_counter()
        try:
            return _ORIGINAL_IMPORT(*args, **kwargs)
        finally:
            clock.imports_s += time.perf_counter() - began
            clock._nesting.inside = False

    return timed


def start_clock() -> PhaseClock:
    """Start timing this process's imports and phases (once; the CLI's ``--verbose``)."""
    global _clock
    if _clock is None:
        _clock = PhaseClock()
        builtins.__import__ = _timed_import(_clock)
    return _clock


def stop_clock() -> None:
    """Stop timing and give ``import`` back its own function."""
    global _clock
    builtins.__import__ = _ORIGINAL_IMPORT
    _clock = None


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Count the time inside as ``name`` (imports made inside stay imports)."""
    clock = _clock
    if clock is None:
        yield
        return
    began, imports_before = time.perf_counter(), clock.imports_s
    try:
        yield
    finally:
        spent = time.perf_counter() - began - (clock.imports_s - imports_before)
        clock.phases[name] = clock.phases.get(name, 0.0) + max(0.0, spent)

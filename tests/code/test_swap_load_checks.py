"""The checks of ``bench/swap_checks.py`` catch what they claim to catch.

The hot-swap integration test passes only if these checks find nothing, so
each one is shown here to flag a hand-made bad response (a value from the
other version, a header that disagrees with the body, a version served long
after it was replaced) and to measure propagation from per-worker responses.

The watcher's side of a swap is here too: the old version serves while the
new one loads, a rollback reuses the model it replaced, and explanations are
prepared after the swap, never before it.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from terraops.api.model_holder import ChampionWatcher, LoadedModel, ModelHolder
from terraops.services import get_service

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.swap_checks import (
    Change,
    Sample,
    late_responses,
    mismatches,
    propagation_s,
)

#: uhi: v1 answers 30.0 to probe 0, v2 answers 31.0.
EXPECTED = {"uhi": {1: [30.0], 2: [31.0]}}
#: One swap 1 → 2 committed between t=10.0 and t=10.5.
PROMOTE = Change("uhi", "promote", 1, 2, 10.0, 10.5, 200, 2)


def sample(version: int, value: float, *, worker: int = 1, at: float = 5.0, **kw: int) -> Sample:
    return Sample(
        "uhi", 0, worker, at, at + 0.01, kw.get("status", 200), version,
        kw.get("header", version), value,
    )  # fmt: skip


def test_a_response_carrying_the_other_versions_value_is_a_mismatch() -> None:
    good, wrong = sample(1, 30.0), sample(1, 31.0)
    assert mismatches([good, wrong], EXPECTED) == [wrong]


@pytest.mark.parametrize(
    "bad",
    [sample(1, 30.0, header=2), sample(3, 30.0), sample(1, 30.0 + 1e-6)],
    ids=["header-disagrees", "unknown-version", "off-by-1e-6"],
)
def test_lineage_and_value_errors_are_mismatches(bad: Sample) -> None:
    assert mismatches([bad], EXPECTED) == [bad]


def test_errors_are_not_counted_as_mismatches() -> None:
    assert mismatches([sample(1, 0.0, status=503)], EXPECTED) == []


def test_the_old_version_is_late_only_past_the_allowed_lag() -> None:
    just_after = sample(1, 30.0, at=11.0)  # a lagging worker, within 2 s of the commit
    long_after = sample(1, 30.0, at=20.0)
    new_too_early = sample(2, 31.0, at=5.0)  # v2 before its promotion even started
    samples = [just_after, long_after, new_too_early, sample(2, 31.0, at=12.0)]
    assert late_responses(samples, EXPECTED, [PROMOTE], lag_s=2.0) == [long_after, new_too_early]


def test_propagation_is_the_last_workers_first_new_answer_after_the_commit() -> None:
    samples = [
        sample(2, 31.0, worker=1, at=10.2),  # handled the admin call: switched inside it
        sample(1, 30.0, worker=2, at=10.6),
        sample(2, 31.0, worker=2, at=10.8),
    ]
    latencies, unobserved = propagation_s([PROMOTE], samples)
    assert latencies == [pytest.approx(10.81 - 10.5)]
    assert unobserved == 0


def test_a_worker_that_never_answered_with_the_new_version_gives_no_figure() -> None:
    samples = [sample(2, 31.0, worker=1, at=10.2), sample(1, 30.0, worker=2, at=10.6)]
    assert propagation_s([PROMOTE], samples) == ([], 1)


# ----- the watcher's side of a swap: what it asks of the serving process ----------------
class Registry:
    """A registry whose champion the test moves; counts the folders it hands out."""

    def __init__(self, root: Path) -> None:
        self.root, self.champion = root, 1
        self.fetches: list[int] = []

    def get_aliases(self, service: str) -> dict[str, int]:
        return {"champion": self.champion}

    def fetch_model(self, service: str, version: int) -> Path:
        self.fetches.append(version)
        (self.root / str(version)).mkdir(parents=True, exist_ok=True)
        return self.root / str(version)

    def get_version(self, service: str, version: int) -> Any:
        raise NotImplementedError


class Model:
    """A served object; ``prepared`` is set by the watcher's ``prepare``."""

    feature_names: ClassVar[list[str]] = ["ndvi"]

    def __init__(self, path: Path) -> None:
        self.path, self.prepared = path, threading.Event()


class Loader:
    """Loads a folder into a :class:`Model`; ``gate`` (when set) holds the load open."""

    def __init__(self) -> None:
        self.loads: list[str] = []
        self.gate: threading.Event | None = None

    def __call__(self, path: Path, definition: Any) -> Model:
        if self.gate is not None:
            assert self.gate.wait(10)
        self.loads.append(path.name)
        return Model(path)


def watch(tmp_path: Path, loader: Loader, prepare: Any = None) -> tuple[ChampionWatcher, Registry]:
    holders = {"uhi": ModelHolder(get_service("uhi"))}
    registry = Registry(tmp_path / "store")
    watcher = ChampionWatcher(
        holders,
        registry,
        loader,
        cache_dir=tmp_path / "cache",
        poll_interval_s=3600,  # the tests poll by hand
        prepare=prepare,
    )
    return watcher, registry


def serving(w: ChampionWatcher) -> LoadedModel:
    current = w.holders["uhi"].current
    assert current is not None
    return current


def test_the_old_version_serves_while_the_new_one_loads(tmp_path: Path) -> None:
    loader = Loader()
    w, registry = watch(tmp_path, loader)
    w.start()
    try:
        old = serving(w)
        loader.gate = threading.Event()
        registry.champion = 2
        swap = threading.Thread(target=w.refresh, args=("uhi",))
        swap.start()
        time.sleep(0.05)
        assert swap.is_alive() and serving(w) is old  # loading: requests get v1
        loader.gate.set()
        swap.join(10)
        assert serving(w).version == 2
    finally:
        w.stop()


def test_a_rollback_serves_the_model_it_replaced_without_loading_it_again(
    tmp_path: Path,
) -> None:
    loader = Loader()
    w, registry = watch(tmp_path, loader)
    w.poll_once()
    first = serving(w)
    for champion in (2, 1, 2, 1):  # promote, roll back, twice
        registry.champion = champion
        w.poll_once()
        assert serving(w).version == champion
    assert loader.loads == ["1", "2"]  # each version loaded once, flips are free
    assert serving(w).predictor is first.predictor
    assert serving(w).loaded_at > first.loaded_at  # served again from now on
    registry.champion = 3
    w.poll_once()
    registry.champion = 2
    w.poll_once()  # only the last replaced version is kept: v2 is loaded again
    assert loader.loads == ["1", "2", "3", "2"]


def test_explanations_are_prepared_before_start_returns_then_after_each_swap(
    tmp_path: Path,
) -> None:
    release = threading.Event()

    def prepare(model: Model) -> None:
        if model.path.name == "2":
            assert release.wait(10)
        model.prepared.set()

    w, registry = watch(tmp_path, Loader(), prepare)
    w.start()
    try:
        assert serving(w).predictor.prepared.is_set()  # before the first request
        registry.champion = 2
        w.refresh("uhi")  # returns with v2 serving, its preparation still running
        new = serving(w)
        assert new.version == 2 and not new.predictor.prepared.is_set()
        release.set()
        assert new.predictor.prepared.wait(10)
    finally:
        w.stop()


def test_a_failing_preparation_leaves_the_new_version_serving(tmp_path: Path) -> None:
    def prepare(model: Model) -> None:
        raise RuntimeError("no tables for this one")

    w, _ = watch(tmp_path, Loader(), prepare)
    w.poll_once()
    assert serving(w).version == 1 and w.holders["uhi"].last_error is None

"""The checks of ``bench/swap_checks.py`` catch what they claim to catch.

The hot-swap integration test passes only if these checks find nothing, so
each one is shown here to flag a hand-made bad response (a value from the
other version, a header that disagrees with the body, a version served long
after it was replaced) and to measure propagation from per-worker responses.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

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

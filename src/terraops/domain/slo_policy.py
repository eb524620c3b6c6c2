"""What an SLO breach is allowed to do: roll the champion back, or only alert.

A rollback is the right answer to a breach **the model causes**, and the wrong
one to a breach **the host causes**: a CPU spike, a noisy neighbour or a full
disk make every version slow or failing, and rolling a good model back for it
loses the release and fixes nothing. So the objectives fall in two kinds:

- **model quality** — the live error on ground truth (with enough truth rows)
  and critical drift: they judge the model itself, so a breach may roll back;
- **serving** — latency p95 and availability (5xx share): they judge the model
  *and* its host, so a breach alerts and rolls back **only when the new version
  is shown to be the cause**: the version it replaced (the previous champion)
  served enough requests in the *same window* and was healthy there, on the
  same host, under the same load:

  - latency: the champion's p95 breaches the target while the previous
    version's p95 stayed at least :data:`LATENCY_MARGIN` below the target;
  - availability: the champion's 5xx share breaches the budget while the
    previous version's stayed within it and is at most half the champion's
    (:data:`ERROR_RATIO_FACTOR`).

  When the previous version has too few requests in the window (typically the
  promotion is older than the window) nothing shows the release is the cause,
  so the breach only alerts.

Pure functions over plain numbers: the SLO pipeline gathers the observations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

QUALITY_SLOS = ("live_metric", "drift")
"""Objectives that judge the model itself: a breach may roll back."""
SERVING_SLOS = ("availability", "latency_p95")
"""Objectives that judge the model and its host: a breach rolls back only when the release
is shown to be the cause."""

LATENCY_MARGIN = 0.2
"""The previous version's p95 must be ≤ (1 − margin) × target to count as healthy: a p95 just
under the target while the champion's is just over it is the same host, not a slower model."""
ERROR_RATIO_FACTOR = 2.0
"""The champion's 5xx share must be at least this multiple of the previous version's."""

Decision = Literal["rollback", "alert-only"]


@dataclass(frozen=True)
class VersionComparison:
    """One serving objective for the champion and for the version it replaced, same window.

    ``previous_observed`` is None when the previous version served too few
    requests in the window to be judged (``previous_n`` says how many).
    """

    slo: str  # availability | latency_p95
    target: float
    champion_version: int
    champion_observed: float
    previous_version: int
    previous_observed: float | None
    previous_n: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "slo": self.slo,
            "target": self.target,
            "champion": {"version": self.champion_version, "observed": self.champion_observed},
            "previous": {
                "version": self.previous_version,
                "observed": self.previous_observed,
                "n": self.previous_n,
            },
        }


@dataclass(frozen=True)
class RollbackDecision:
    """The policy's verdict on a breach, with the sentence an on-call person reads."""

    decision: Decision
    reason: str
    comparisons: tuple[VersionComparison, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reason": self.reason,
            "comparisons": [c.as_dict() for c in self.comparisons],
        }


def release_is_the_cause(comparison: VersionComparison, min_requests: int) -> tuple[bool, str]:
    """Whether the champion, not the host, explains a serving breach — and why (one clause)."""
    c = comparison
    prev, champ = f"v{c.previous_version}", f"v{c.champion_version}"
    if c.previous_observed is None:
        return False, (
            f"{c.slo}: previous champion {prev} served {c.previous_n} requests in the window "
            f"(< {min_requests}), so nothing shows the release is the cause"
        )
    if c.slo == "latency_p95":
        healthy_below = (1.0 - LATENCY_MARGIN) * c.target
        observed = (
            f"p95 {champ} {c.champion_observed:.3g} ms vs {prev} {c.previous_observed:.3g} ms"
        )
        if c.previous_observed <= healthy_below:
            return (
                True,
                f"latency_p95: {observed} in the same window — only the new version is slow",
            )
        return False, (
            f"latency_p95: {observed} in the same window — {prev} is slow too "
            f"(> {healthy_below:.3g} ms), so the host, not the release"
        )
    observed = f"5xx share {champ} {c.champion_observed:.4g} vs {prev} {c.previous_observed:.4g}"
    within = c.previous_observed <= c.target
    ratio_ok = c.champion_observed >= ERROR_RATIO_FACTOR * c.previous_observed
    if within and ratio_ok:
        return True, f"availability: {observed} in the same window — only the new version fails"
    return False, (
        f"availability: {observed} in the same window — {prev} fails too, so the host, "
        "not the release"
    )


def decide_rollback(
    breached: Sequence[str],
    comparisons: Mapping[str, VersionComparison],
    *,
    min_requests: int,
    previous_version: int | None,
) -> RollbackDecision | None:
    """The verdict on the breached objectives of a champion (None: nothing breached).

    ``comparisons`` holds, per breached serving objective, the champion and its
    previous version in the same window; ``previous_version`` is None when the
    history knows no earlier champion.
    """
    if not breached:
        return None
    quality = [s for s in breached if s in QUALITY_SLOS]
    if quality:
        return RollbackDecision(
            "rollback", f"model quality breached ({', '.join(quality)}): the model itself is judged"
        )
    if previous_version is None:
        return RollbackDecision(
            "alert-only",
            f"serving breach ({', '.join(breached)}) and no earlier champion to compare with, "
            "so nothing shows the release is the cause",
        )
    verdicts = [release_is_the_cause(comparisons[s], min_requests) for s in breached]
    clauses = "; ".join(why for _, why in verdicts)
    used = tuple(comparisons[s] for s in breached)
    if any(caused for caused, _ in verdicts):
        return RollbackDecision("rollback", f"the new version is the cause — {clauses}", used)
    return RollbackDecision("alert-only", f"serving breach, alert only — {clauses}", used)

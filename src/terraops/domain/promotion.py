"""Promotion and rollback decisions, as pure functions over plain facts.

The lifecycle pipeline gathers the facts (run tags, metrics, artifacts, whether
the model loads, the alias history) through adapters; the decisions — may this
version become champion, which version does a rollback restore, which journal
rows does a reconcile resolve — live here so they can be tested exhaustively
without MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

CHAMPION = "champion"
CHALLENGER = "challenger"

Action = Literal["promote", "rollback", "assign", "external"]
EntryStatus = Literal["pending", "committed", "aborted"]

REQUIRED_ARTIFACTS: tuple[str, ...] = ("model", "feature_schema.json", "data_fingerprint.json")
DATA_QUALITY_TAG = "terraops.data_quality"


@dataclass(frozen=True)
class HistoryEntry:
    """One change of an alias, as journalled (MLflow itself keeps no history).

    ``status`` is ``pending`` between the write-ahead intent and the alias
    change; a reconcile turns it into ``committed`` or ``aborted`` by looking at
    where the alias actually points.
    """

    id: int
    service: str
    alias: str
    action: Action
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str | None
    forced: bool
    status: EntryStatus
    created_at: datetime
    resolved_at: datetime | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "service": self.service,
            "alias": self.alias,
            "action": self.action,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "actor": self.actor,
            "reason": self.reason,
            "forced": self.forced,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
        }


@dataclass(frozen=True)
class CandidateFacts:
    """What the gates need to know about one model version."""

    version: int
    tags: Mapping[str, str]
    metrics: Mapping[str, float]
    artifacts: frozenset[str]
    load_error: str | None = None  # None: fetched, loaded and predicted a finite value


@dataclass(frozen=True)
class GatePolicy:
    """The service-specific part of the gates."""

    primary_metric: str
    higher_is_better: bool
    tolerance: float  # relative: 0.05 = may be 5 % worse than the champion
    required_metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromotionDecision:
    """``allowed`` plus every reason; ``overridden`` lists reasons ``--force`` waved."""

    allowed: bool
    blocking: list[str] = field(default_factory=list)
    overridden: list[str] = field(default_factory=list)


def _metric_regression(
    candidate: float, champion: float, *, higher_is_better: bool, tolerance: float
) -> bool:
    """True when the candidate is worse than the champion beyond ``tolerance``.

    The tolerance is relative to the champion's magnitude, so it means the same
    for an RMSE of 0.8 K and one of 3 K.
    """
    allowed_gap = tolerance * abs(champion)
    if higher_is_better:
        return candidate < champion - allowed_gap
    return candidate > champion + allowed_gap


def quality_gate_failures(
    candidate: CandidateFacts, champion: CandidateFacts | None, policy: GatePolicy
) -> list[str]:
    """Reasons the candidate fails the data/metric gates (``--force`` may override)."""
    reasons: list[str] = []
    quality = candidate.tags.get(DATA_QUALITY_TAG)
    if quality != "passed":
        reasons.append(
            f"data quality of the training run is {quality or 'unknown'!r}, not 'passed' "
            f"(tag {DATA_QUALITY_TAG})"
        )
    for name in dict.fromkeys((policy.primary_metric, *policy.required_metrics)):
        value = candidate.metrics.get(name)
        if value is None or not math.isfinite(value):
            reasons.append(f"required metric {name!r} is missing or not finite")
    missing_artifacts = [a for a in REQUIRED_ARTIFACTS if a not in candidate.artifacts]
    if missing_artifacts:
        reasons.append(f"required artifacts missing: {', '.join(missing_artifacts)}")
    reasons.extend(_champion_comparison(candidate, champion, policy))
    return reasons


def _champion_comparison(
    candidate: CandidateFacts, champion: CandidateFacts | None, policy: GatePolicy
) -> list[str]:
    if champion is None or champion.version == candidate.version:
        return []
    new = candidate.metrics.get(policy.primary_metric)
    old = champion.metrics.get(policy.primary_metric)
    if new is None or old is None or not (math.isfinite(new) and math.isfinite(old)):
        return []  # a missing candidate metric is reported above; no champion metric: no bar
    if not _metric_regression(
        new, old, higher_is_better=policy.higher_is_better, tolerance=policy.tolerance
    ):
        return []
    direction = "higher" if policy.higher_is_better else "lower"
    return [
        f"{policy.primary_metric} {new:.4g} is worse than champion v{champion.version}'s "
        f"{old:.4g} beyond the {policy.tolerance:.0%} tolerance ({direction} is better)"
    ]


def decide_promotion(
    candidate: CandidateFacts,
    champion: CandidateFacts | None,
    policy: GatePolicy,
    *,
    force: bool = False,
) -> PromotionDecision:
    """Apply every gate; ``force`` waives data/metric gates but never "cannot load"."""
    blocking: list[str] = []
    if candidate.load_error is not None:
        blocking.append(f"model v{candidate.version} cannot be loaded: {candidate.load_error}")
    quality = quality_gate_failures(candidate, champion, policy)
    if force:
        return PromotionDecision(allowed=not blocking, blocking=blocking, overridden=quality)
    blocking.extend(quality)
    return PromotionDecision(allowed=not blocking, blocking=blocking)


def champion_lineage(entries: Iterable[HistoryEntry]) -> list[int]:
    """The stack of champions a rollback walks back through, oldest first.

    Replays committed champion changes in order: a promotion pushes a version; a
    rollback pops back to its target (a version that was rolled back *from* is
    not offered again by the next rollback), or pushes it if it was not on the
    stack (an explicit ``--to``). Entries must be oldest first.
    """
    stack: list[int] = []
    for entry in entries:
        if entry.alias != CHAMPION or entry.status != "committed" or entry.to_version is None:
            continue
        target = entry.to_version
        if entry.action == "rollback" and target in stack:
            del stack[stack.index(target) + 1 :]
        elif not stack or stack[-1] != target:
            stack.append(target)
    return stack


def rollback_target(entries: Sequence[HistoryEntry], current: int | None) -> int | None:
    """The champion before ``current`` according to the history, or None."""
    stack = champion_lineage(entries)
    if current is not None and current in stack:
        stack = stack[: len(stack) - stack[::-1].index(current) - 1]
    earlier = [v for v in stack if v != current]
    return earlier[-1] if earlier else None


def ever_champion(entries: Iterable[HistoryEntry], version: int) -> bool:
    """Whether ``version`` was champion at some point (committed)."""
    return any(
        e.alias == CHAMPION and e.status == "committed" and e.to_version == version for e in entries
    )


def resolve_pending(entry: HistoryEntry, actual: int | None) -> EntryStatus:
    """A pending intent happened iff the alias now points at its target."""
    return "committed" if actual == entry.to_version else "aborted"


def last_known_version(entries: Sequence[HistoryEntry], alias: str) -> int | None:
    """Where the journal believes ``alias`` points (last committed change)."""
    for entry in reversed(entries):
        if entry.alias == alias and entry.status == "committed":
            return entry.to_version
    return None

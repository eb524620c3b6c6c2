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
    gates: tuple[GateResult, ...] = ()
    """The gates judged for this change (promotions; a rollback's load check)."""

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
            "gates": [g.as_dict() for g in self.gates],
        }


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict on a candidate: name, passed, why (kept in the history)."""

    gate: str
    passed: bool
    detail: str
    overridable: bool = True  # ``--force`` may waive it (never "loadable")

    def as_dict(self) -> dict[str, object]:
        return {
            "gate": self.gate,
            "passed": self.passed,
            "detail": self.detail,
            "overridable": self.overridable,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> GateResult:
        return cls(
            gate=str(data.get("gate", "")),
            passed=bool(data.get("passed")),
            detail=str(data.get("detail", "")),
            overridable=bool(data.get("overridable", True)),
        )


@dataclass(frozen=True)
class CandidateFacts:
    """What the gates need to know about one model version."""

    version: int
    tags: Mapping[str, str]
    metrics: Mapping[str, float]
    artifacts: frozenset[str]
    load_error: str | None = None  # None: fetched, loaded and predicted a finite value
    evaluation: Mapping[str, float] | None = None
    """Metrics on the service's shared held-out evaluation set (None: not scored)."""
    evaluation_set: str | None = None  # "uhi v2 (sha256 1a2b…)": which set scored it


@dataclass(frozen=True)
class GatePolicy:
    """The service-specific part of the gates."""

    primary_metric: str
    higher_is_better: bool
    tolerance: float  # relative: 0.05 = may be 5 % worse than the champion
    required_metrics: tuple[str, ...] = ()
    target_metric: str | None = None  # the service's SLO metric (a run metric) ...
    metric_target: float | None = None  # ... must meet this for every promotion
    target_higher_is_better: bool = False
    evaluation_metric: str | None = None
    """Metric compared on the shared evaluation set (e.g. ``mae``); None: CV metrics."""


@dataclass(frozen=True)
class PromotionDecision:
    """``allowed`` plus every reason; ``overridden`` lists reasons ``--force`` waved."""

    allowed: bool
    blocking: list[str] = field(default_factory=list)
    overridden: list[str] = field(default_factory=list)
    gates: list[GateResult] = field(default_factory=list)


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


def evaluate_gates(
    candidate: CandidateFacts, champion: CandidateFacts | None, policy: GatePolicy
) -> list[GateResult]:
    """Every gate's verdict, in a fixed order (the history keeps them all)."""
    gates = [
        GateResult(
            "loadable",
            candidate.load_error is None,
            "fetched, loaded and predicted a finite value for the example row"
            if candidate.load_error is None
            else f"model v{candidate.version} cannot be loaded: {candidate.load_error}",
            overridable=False,
        )
    ]
    quality = candidate.tags.get(DATA_QUALITY_TAG)
    gates.append(
        GateResult(
            "data_quality",
            quality == "passed",
            "training data passed its quality suite"
            if quality == "passed"
            else f"data quality of the training run is {quality or 'unknown'!r}, not 'passed' "
            f"(tag {DATA_QUALITY_TAG})",
        )
    )
    for name in dict.fromkeys((policy.primary_metric, *policy.required_metrics)):
        value = candidate.metrics.get(name)
        ok = value is not None and math.isfinite(value)
        gates.append(
            GateResult(
                f"metric_present:{name}",
                ok,
                f"{name} = {value:.4g}"
                if ok
                else f"required metric {name!r} is missing or not finite",
            )
        )
    missing_artifacts = [a for a in REQUIRED_ARTIFACTS if a not in candidate.artifacts]
    gates.append(
        GateResult(
            "artifacts",
            not missing_artifacts,
            f"required artifacts missing: {', '.join(missing_artifacts)}"
            if missing_artifacts
            else "model, feature schema and data fingerprint logged",
        )
    )
    target = _target_gate(candidate, policy)
    if target is not None:
        gates.append(target)
    comparison = _champion_comparison(candidate, champion, policy)
    if comparison is not None:
        gates.append(comparison)
    return gates


def _target_gate(candidate: CandidateFacts, policy: GatePolicy) -> GateResult | None:
    """The service's quality target (``SLO.metric_target``): for every promotion."""
    if policy.target_metric is None or policy.metric_target is None:
        return None
    value = candidate.metrics.get(policy.target_metric)
    if value is None or not math.isfinite(value):
        return None  # reported by the metric_present gate
    target = policy.metric_target
    ok = value >= target if policy.target_higher_is_better else value <= target
    relation = ">=" if policy.target_higher_is_better else "<="
    detail = (
        f"{policy.target_metric} {value:.4g} meets the service target {relation} {target:g}"
        if ok
        else f"{policy.target_metric} {value:.4g} misses the service target "
        f"{relation} {target:g} (SLO.metric_target)"
    )
    return GateResult("metric_target", ok, detail)


def quality_gate_failures(
    candidate: CandidateFacts, champion: CandidateFacts | None, policy: GatePolicy
) -> list[str]:
    """Reasons the candidate fails the data/metric gates (``--force`` may override)."""
    return [
        g.detail
        for g in evaluate_gates(candidate, champion, policy)
        if g.overridable and not g.passed
    ]


def _champion_comparison(
    candidate: CandidateFacts, champion: CandidateFacts | None, policy: GatePolicy
) -> GateResult | None:
    """Candidate vs champion: on the shared evaluation set when both were scored on it,
    else (no set registered) on their own run metrics, which may come from different data."""
    if champion is None or champion.version == candidate.version:
        return None
    on_set = (
        policy.evaluation_metric is not None
        and candidate.evaluation is not None
        and champion.evaluation is not None
        and candidate.evaluation_set is not None
        and candidate.evaluation_set == champion.evaluation_set
    )
    if on_set:
        assert policy.evaluation_metric is not None
        assert candidate.evaluation is not None and champion.evaluation is not None
        name = policy.evaluation_metric
        new = candidate.evaluation.get(name)
        old = champion.evaluation.get(name)
        where = f" on evaluation set {candidate.evaluation_set}"
    else:
        name = policy.primary_metric
        new = candidate.metrics.get(name)
        old = champion.metrics.get(name)
        where = " (own run metrics: no shared evaluation set)"
    if new is None or old is None or not (math.isfinite(new) and math.isfinite(old)):
        return None  # a missing candidate metric is reported above; no champion metric: no bar
    direction = "higher" if policy.higher_is_better else "lower"
    if not _metric_regression(
        new, old, higher_is_better=policy.higher_is_better, tolerance=policy.tolerance
    ):
        return GateResult(
            "vs_champion",
            True,
            f"{name} {new:.4g} vs champion v{champion.version}'s {old:.4g}{where} "
            f"(within {policy.tolerance:.0%}, {direction} is better)",
        )
    return GateResult(
        "vs_champion",
        False,
        f"{name} {new:.4g} is worse than champion v{champion.version}'s "
        f"{old:.4g} beyond the {policy.tolerance:.0%} tolerance ({direction} is better){where}",
    )


def decide_promotion(
    candidate: CandidateFacts,
    champion: CandidateFacts | None,
    policy: GatePolicy,
    *,
    force: bool = False,
) -> PromotionDecision:
    """Apply every gate; ``force`` waives data/metric gates but never "cannot load"."""
    gates = evaluate_gates(candidate, champion, policy)
    blocking = [g.detail for g in gates if not g.passed and not g.overridable]
    quality = [g.detail for g in gates if not g.passed and g.overridable]
    if force:
        return PromotionDecision(
            allowed=not blocking, blocking=blocking, overridden=quality, gates=gates
        )
    blocking.extend(quality)
    return PromotionDecision(allowed=not blocking, blocking=blocking, gates=gates)


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

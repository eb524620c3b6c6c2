"""A LightGBM model flattened into node arrays and evaluated by a compiled kernel.

Why: ``Booster.predict`` costs ≈ 4 µs per row of a 300-tree model on one
thread here, most of it per-call set-up and the generic C++ tree walk; the
HTTP batch route has a budget of a few µs per row for everything (body
decoding, validation, the model, the response). The same trees as flat arrays
walked by a numba kernel cost a fraction of that.

The kernel reproduces LightGBM's own decision rules (``Tree::NumericalDecision``
and the dense-row conversion of the C API), so its values are LightGBM's:

- an input with ``|x| <= 1e-35`` (``kZeroThreshold``, a C float) is read as
  exactly 0.0 (LightGBM drops it from the sparse row it builds);
- missing type ``NaN``: a NaN goes the split's default side;
- missing type ``None``: a NaN is read as 0.0 and compared as such;
- missing type ``Zero``: a NaN or a zero goes the default side;
- otherwise ``x <= threshold`` goes left;
- the trees' outputs are summed in LightGBM's order, in float64, then the
  objective's output transform is applied (a binary model's probability is
  ``1 / (1 + exp(-sigmoid · raw))``).

Models it cannot reproduce — categorical splits, linear trees, several outputs
per iteration (multiclass), averaged outputs (random forest mode), objectives
with another transform — are refused by :func:`unsupported_reason`; a caller
keeps those on LightGBM. :func:`agreement` measures the compiled model against
LightGBM on :func:`check_inputs` (the thresholds themselves, their neighbours,
NaN, ±0, random values), which the loader uses to decide whether it may serve
the compiled model at all.

Pure: no I/O (the caller hands in ``Booster.dump_model()``); numpy and numba.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numba
import numpy as np

#: LightGBM reads an input with ``|x| <= kZeroThreshold`` (1e-35 as a C float) as exactly 0.
ZERO_THRESHOLD = float(np.float32(1e-35))
#: Largest relative difference to LightGBM's predictions a compiled model may show.
RELATIVE_TOLERANCE = 1e-9
#: Objectives whose output is the raw score (no transform).
_IDENTITY_OBJECTIVES = frozenset(
    {"regression", "regression_l1", "huber", "fair", "quantile", "mape", "cross_entropy_lambda"}
)
#: How a split handles NaN and zero (``missing_type`` of ``dump_model``).
_MISSING_CODES = {"None": 0, "Zero": 1, "NaN": 2}
_IDENTITY, _SIGMOID, _EXP = 0, 1, 2


@dataclass(frozen=True)
class CompiledForest:
    """The trees of one model as flat node arrays (see the module docstring).

    Node ``n`` is the row ``meta[n] = (feature, left, right, flags)`` and
    ``threshold[n]``: ``x <= threshold`` goes to ``left``. ``flags`` bit 0: a NaN
    goes left; bit 1: a ``Zero`` missing-type split (a zero goes the default
    side, the NaN side). A leaf is its own child and holds ``node_value[n]``;
    tree ``t`` starts at ``roots[t]`` and reaches a leaf within ``depth[t]`` steps.
    The kernel walks ``nodes``, the same nodes packed 16 bytes each.
    """

    n_features: int
    meta: np.ndarray  # int32 (nodes, 4): feature, left, right, flags
    threshold: np.ndarray  # float64 (nodes,)
    node_value: np.ndarray  # float64 (nodes,), the leaf value of leaves
    roots: np.ndarray  # int32 (trees,)
    depth: np.ndarray  # int32 (trees,)
    transform: int  # _IDENTITY, _SIGMOID or _EXP
    sigmoid: float  # the binary objective's sigmoid parameter
    #: The kernel's copy of the nodes, 16 bytes each (:func:`pack_nodes`); built by
    #: :func:`compile_forest`.
    nodes: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))

    @property
    def n_trees(self) -> int:
        return int(self.roots.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.meta.shape[0])

    @property
    def is_split(self) -> np.ndarray:
        """Which nodes split (a leaf is its own left child)."""
        return np.asarray(self.meta[:, 1] != np.arange(self.n_nodes))


def unsupported_reason(dump: Mapping[str, Any]) -> str | None:
    """Why :func:`compile_forest` cannot reproduce this model exactly, or ``None``."""
    if int(dump.get("num_tree_per_iteration", 1)) != 1 or int(dump.get("num_class", 1)) != 1:
        return "several outputs per iteration (multiclass)"
    if dump.get("average_output"):
        return "averaged tree outputs (random forest mode)"
    objective = str(dump.get("objective", "regression")).split()
    if objective and _transform(objective) is None:
        return f"objective {' '.join(objective)!r}"
    for tree in dump.get("tree_info", []):
        if tree.get("is_linear"):
            return "linear trees"
        if not _numerical(tree["tree_structure"]):
            return "categorical splits"
    return None


def _numerical(node: Mapping[str, Any]) -> bool:
    stack = [node]
    while stack:
        item = stack.pop()
        if "split_feature" not in item:
            continue
        if item.get("decision_type") != "<=" or item.get("missing_type") not in _MISSING_CODES:
            return False
        stack += [item["left_child"], item["right_child"]]
    return True


def _transform(objective: list[str]) -> tuple[int, float] | None:
    """(output transform, sigmoid) of ``dump_model()["objective"]`` split on spaces."""
    name, params = objective[0], dict(p.split(":", 1) for p in objective[1:] if ":" in p)
    if "sqrt" in objective[1:]:
        return None
    if name in _IDENTITY_OBJECTIVES:
        return _IDENTITY, 1.0
    if name == "binary":
        return _SIGMOID, float(params.get("sigmoid", 1.0))
    if name in ("poisson", "gamma", "tweedie"):
        return _EXP, 1.0
    return None


def compile_forest(dump: Mapping[str, Any], n_features: int) -> CompiledForest:
    """Flatten ``Booster.dump_model()`` (refused models: :func:`unsupported_reason`)."""
    reason = unsupported_reason(dump)
    if reason is not None:
        raise ValueError(f"cannot compile this model: {reason}")
    transform = _transform(str(dump.get("objective", "regression")).split() or ["regression"])
    assert transform is not None
    meta: list[list[int]] = []
    threshold: list[float] = []
    value: list[float] = []
    roots: list[int] = []
    depth: list[int] = []

    def add(node: Mapping[str, Any], level: int) -> tuple[int, int]:
        """(index of ``node``, depth of its deepest leaf)."""
        index = len(meta)
        meta.append([0, index, index, 0])
        threshold.append(0.0)
        value.append(0.0)
        if "split_feature" not in node:
            value[index] = float(node["leaf_value"])
            return index, level
        # dump_model() writes an infinite threshold (a NaN-only split) as ±1e300.
        cut = float(node["threshold"])
        cut = math.copysign(math.inf, cut) if abs(cut) >= 1e300 else cut
        missing = _MISSING_CODES[str(node["missing_type"])]
        # None: a NaN is read as 0.0, so it goes where 0.0 goes.
        nan_left = bool(node["default_left"]) if missing else cut >= 0.0
        threshold[index] = cut
        left, deep_left = add(node["left_child"], level + 1)
        right, deep_right = add(node["right_child"], level + 1)
        flags = int(nan_left) | (2 if missing == 1 else 0)
        meta[index] = [int(node["split_feature"]), left, right, flags]
        return index, max(deep_left, deep_right)

    for tree in dump.get("tree_info", []):
        root, deepest = add(tree["tree_structure"], 0)
        roots.append(root)
        depth.append(deepest)
    packed = np.asarray(meta, dtype=np.int32).reshape(-1, 4)
    if packed.shape[0] and int(packed[:, 0].max()) >= n_features:
        raise ValueError(f"a split uses feature {packed[:, 0].max()}, the model has {n_features}")
    forest = CompiledForest(
        n_features=n_features,
        meta=packed,
        threshold=np.asarray(threshold, dtype=np.float64),
        node_value=np.asarray(value, dtype=np.float64),
        roots=np.asarray(roots, dtype=np.int32),
        depth=np.asarray(depth, dtype=np.int32),
        transform=transform[0],
        sigmoid=transform[1],
    )
    return replace(forest, nodes=pack_nodes(forest))


#: Rows walked together through one tree: their walks are independent, so the CPU
#: overlaps them, and the tree stays in cache for the whole block (256 rows: ~13 %
#: more rows/s than 64 on the 300-tree UHI model).
BLOCK_ROWS = 256
#: Bits of a packed node's ``info`` word that hold the feature (the flags above them).
_FEATURE_BITS = 24


def pack_nodes(forest: CompiledForest) -> np.ndarray:
    """The kernel's node records: 16 bytes a node, one cache-line access a step.

    Record ``n`` is two float64 slots: ``threshold``, then as two int32 the
    right child and ``info`` (feature | flags << 24). The left child of a split
    is always ``n + 1`` (nodes are numbered depth first), so it is not stored.
    A leaf goes right to itself whatever the row holds: its threshold is −inf
    and its feature is the constant 0.0 column the kernel appends to each row.
    """
    n = forest.n_nodes
    meta = forest.meta
    index = np.arange(n, dtype=np.int32)
    leaf = meta[:, 1] == index
    if not np.array_equal(meta[~leaf, 1], index[~leaf] + 1):
        raise ValueError("nodes are not numbered depth first (left child = node + 1)")
    if forest.n_features >= 1 << _FEATURE_BITS:
        raise ValueError(f"{forest.n_features} features: at most {(1 << _FEATURE_BITS) - 1}")
    packed = np.zeros(2 * n, dtype=np.float64)
    packed[0::2] = np.where(leaf, -np.inf, forest.threshold)
    ints = packed.view(np.int32).reshape(n, 4)
    ints[:, 2] = np.where(leaf, index, meta[:, 2])
    feature = np.where(leaf, forest.n_features, meta[:, 0])
    ints[:, 3] = feature | (np.where(leaf, 0, meta[:, 3]) << _FEATURE_BITS)
    return packed


def _forest_kernel(  # type: ignore[no-untyped-def]
    X, nodes, node_value, roots, depth, has_zero, out
):
    """Raw score of each row of ``X``: every tree walked, summed in tree order.

    Rows go through a tree in blocks, level by level (a leaf is its own child),
    so the inner loop has no data-dependent branch; a block leaves a tree when
    no row moved. Blocks without NaN (and models without ``Zero`` missing-type
    splits) skip the missing-value rules. ``nodes``: :func:`pack_nodes`.
    """
    zero = ZERO_THRESHOLD
    ints = nodes.view(np.int32)
    mask = (1 << _FEATURE_BITS) - 1
    n_rows, n_features = X.shape
    width = n_features + 1  # the leaves' constant column last
    n_blocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    for b in numba.prange(n_blocks):
        start = b * BLOCK_ROWS
        size = min(BLOCK_ROWS, n_rows - start)
        rows = np.zeros((BLOCK_ROWS, width), dtype=np.float64)
        any_nan = False
        for r in range(size):
            for j in range(n_features):
                x = X[start + r, j]
                any_nan |= x != x
                rows[r, j] = 0.0 if -zero <= x <= zero else x
        missing_rules = any_nan or has_zero
        total = np.zeros(BLOCK_ROWS, dtype=np.float64)
        node = np.empty(BLOCK_ROWS, dtype=np.int32)
        for t in range(roots.shape[0]):
            root = roots[t]
            for r in range(size):
                node[r] = root
            for _ in range(depth[t]):
                moving = False
                if not missing_rules:
                    for r in range(size):
                        n = node[r]
                        x = rows[r, ints[4 * n + 3] & mask]
                        right = ints[4 * n + 2]  # loaded either way: a select, not a branch
                        m = right if x > nodes[2 * n] else n + 1
                        moving |= m != n
                        node[r] = m
                else:
                    for r in range(size):
                        n = node[r]
                        info = ints[4 * n + 3]
                        flags = info >> _FEATURE_BITS
                        x = rows[r, info & mask]
                        if has_zero and (flags & 2) != 0 and (x != x or x == 0.0):
                            go_right = (flags & 1) == 0
                        else:  # x > threshold is false for NaN: right only if NaN goes right
                            go_right = (x > nodes[2 * n]) | ((x != x) & ((flags & 1) == 0))
                        m = ints[4 * n + 2] if go_right else n + 1
                        moving |= m != n
                        node[r] = m
                if not moving:
                    break
            for r in range(size):
                total[r] += node_value[node[r]]
        for r in range(size):
            out[start + r] = total[r]


# One thread (a server worker, like LightGBM's num_threads=1) and all threads (batch jobs).
_serial_kernel = numba.njit(cache=True, nogil=True)(_forest_kernel)
_parallel_kernel = numba.njit(cache=True, nogil=True, parallel=True)(_forest_kernel)


def predict_raw(forest: CompiledForest, X: np.ndarray, *, parallel: bool = False) -> np.ndarray:
    """Sum of the trees' outputs per row (LightGBM's ``raw_score=True``)."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != forest.n_features:
        raise ValueError(f"expected rows of {forest.n_features} features, got shape {arr.shape}")
    out = np.empty(arr.shape[0], dtype=np.float64)
    kernel = _parallel_kernel if parallel else _serial_kernel
    nodes = forest.nodes
    if nodes.shape[0] != 2 * forest.n_nodes:  # built by hand, not by compile_forest
        nodes = pack_nodes(forest)
    kernel(
        arr,
        nodes,
        forest.node_value,
        forest.roots,
        forest.depth,
        bool((forest.meta[:, 3] & 2).any()),
        out,
    )
    return out


def predict(forest: CompiledForest, X: np.ndarray, *, parallel: bool = False) -> np.ndarray:
    """What ``Booster.predict(X)`` returns: the raw score through the objective's transform."""
    raw = predict_raw(forest, X, parallel=parallel)
    if forest.transform == _SIGMOID:
        return np.asarray(1.0 / (1.0 + np.exp(-forest.sigmoid * raw)))
    if forest.transform == _EXP:
        return np.asarray(np.exp(raw))
    return raw


def check_inputs(forest: CompiledForest, rows: int = 512, seed: int = 0) -> np.ndarray:
    """Rows that exercise every decision rule of the model: thresholds, their float
    neighbours, NaN, ±0, ±1e-35 and values spread over each feature's split range."""
    rng = np.random.default_rng(seed)
    n = forest.n_features
    X = np.empty((rows, n), dtype=np.float64)
    tiny, huge = ZERO_THRESHOLD, 1e300
    specials = np.array([np.nan, 0.0, -0.0, tiny, -tiny, 1.0, -1.0, huge, -huge, 2 * huge])
    split, feature = forest.is_split, forest.meta[:, 0]
    for j in range(n):
        cuts = forest.threshold[split & (feature == j)]
        cuts = cuts[np.isfinite(cuts)]
        if cuts.size:
            candidates = np.concatenate(
                [cuts, np.nextafter(cuts, np.inf), np.nextafter(cuts, -np.inf), specials]
            )
            spread = rng.uniform(cuts.min() - 1.0, cuts.max() + 1.0, rows)
        else:
            candidates, spread = specials, rng.normal(size=rows)
        picked = rng.choice(candidates, rows)
        X[:, j] = np.where(rng.random(rows) < 0.6, picked, spread)
    return X


def agreement(
    forest: CompiledForest, reference: Callable[[np.ndarray], np.ndarray], X: np.ndarray
) -> float:
    """Largest relative difference between :func:`predict` and ``reference`` on ``X``
    (``|a − b| / max(|b|, 1e-12)``; ``inf`` where one is NaN and the other not)."""
    mine = predict(forest, X)
    theirs = np.asarray(reference(X), dtype=np.float64).reshape(-1)
    if mine.shape != theirs.shape:
        return float("inf")
    both_nan = np.isnan(mine) & np.isnan(theirs)
    diff = np.abs(mine - theirs) / np.maximum(np.abs(theirs), 1e-12)
    diff = np.where(both_nan, 0.0, diff)
    return float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0))


__all__ = [
    "RELATIVE_TOLERANCE",
    "CompiledForest",
    "agreement",
    "check_inputs",
    "compile_forest",
    "pack_nodes",
    "predict",
    "predict_raw",
    "unsupported_reason",
]

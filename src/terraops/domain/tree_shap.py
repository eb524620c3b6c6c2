"""Exact path-dependent TreeSHAP for LightGBM models, one compiled walk per row and tree.

LightGBM's own ``pred_contrib`` walks every path of every tree for each row in
O(leaves × depth²) and explains ~700 rows/s per core on a 300-tree model. The
same values (path-dependent TreeSHAP, Lundberg et al. 2020) follow from a table
built once per model, in the spirit of FastTreeSHAP v2 (Yang 2021):

- For a leaf ``l`` with value ``v`` whose path splits on the distinct features
  ``F`` (``d`` of them), each feature ``j`` has a *zero fraction* ``z_j`` (the
  product of the training-cover ratios of its splits on the path) and, for a
  row ``x``, a *one fraction* ``o_j`` (1 if ``x`` satisfies every split on
  ``j`` along the path, else 0). The leaf's Shapley value for ``i ∈ F`` is
  ``v (o_i − z_i) Σ_{S ⊆ F∖i} w(|S|, d) Π_{j∈S} o_j Π_{j∈F∖S∖i} z_j`` with the
  Shapley weight ``w(s, d) = s!(d−1−s)!/d! = ∫₀¹ tˢ(1−t)^(d−1−s) dt``, i.e.
  ``v (o_i − z_i) ∫₀¹ Π_{j≠i} ((1−t) z_j + t o_j) dt``: a polynomial of degree
  ``d − 1`` in ``t``, integrated exactly by Gauss–Legendre quadrature.
- The value depends on ``x`` only through the set of features it fails
  (``o_j = 0``), so each leaf gets a table of ``2^d × d`` values, one row of
  ``d`` per disagree mask, and explaining a row is: walk each tree once in node
  order, carrying each node's disagree mask (its parent's, plus the split
  feature's bit when the row goes the other way), and at each leaf add the
  table row of its mask to the contributions of its path features.

The walk and the table build are compiled with numba
(:mod:`terraops.domain.tree_shap_kernel`, imported on first use so that a
process that never explains does not load numba).

Inputs are read as LightGBM reads them: a NaN goes the split's default way when
the split's missing type is NaN and is read as 0.0 when it is None, and a value
within ±1e-35 of zero is 0.0.
Models this module cannot reproduce exactly (categorical splits, the Zero
missing type, linear trees, several outputs) are refused by
:func:`supports_model` and stay on LightGBM's ``pred_contrib``.

Pure: no I/O (the caller hands in ``Booster.dump_model()``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Most distinct features on one root-to-leaf path (tables grow as 2^d).
MAX_PATH_FEATURES = 14
#: Most table values (float64) of one model: 128 MB.
MAX_TABLE_VALUES = 16_000_000
#: Most model inputs (a split's code holds its feature in 16 bits).
MAX_FEATURES = 1 << 16
#: Most leaves of one tree (a code holds a node of its tree in 14 bits).
MAX_TREE_LEAVES = 1 << 13


@dataclass(frozen=True)
class TreeShapTables:
    """A LightGBM model compiled for exact TreeSHAP (see the module docstring).

    Splits and leaves of every tree, tree after tree, each tree in preorder;
    the codes pack a node as :mod:`terraops.domain.tree_shap_kernel` documents.
    """

    n_features: int
    expected_value: float
    tree_split: np.ndarray  # (trees + 1,) int64: first split of each tree
    tree_leaf: np.ndarray  # (trees + 1,) int64: first leaf of each tree
    split_code: np.ndarray  # (splits,) int64: feature, NaN side, bit position, nodes
    threshold: np.ndarray  # (splits,) float64: ``x <= threshold`` goes left
    leaf_code: np.ndarray  # (leaves,) int64: node, depth d, first path feature
    leaf_offset: np.ndarray  # (leaves,) int64: the leaf's table (row m at offset + m·d)
    path_feature: np.ndarray  # int32: each leaf's d path features, in bit order
    table: np.ndarray  # float64: each leaf's (2^d, d) values by disagree mask, flattened
    widest_tree: int  # most nodes in one tree (the walk's mask buffer)
    kernel_args: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The kernels' arguments after (X, out), in their order: built once, passed per call.
        args = (
            self.tree_split,
            self.tree_leaf,
            self.split_code,
            self.threshold,
            self.leaf_code,
            self.leaf_offset,
            self.path_feature,
            self.table,
            self.widest_tree,
        )
        object.__setattr__(self, "kernel_args", args)


def supports_model(dump: Mapping[str, Any]) -> bool:
    """Whether :func:`compile_model` reproduces LightGBM's TreeSHAP for this model exactly.

    Also False where the tables would outgrow :data:`MAX_TABLE_VALUES` (paths on
    many distinct features: a leaf's table doubles with each).
    """
    if int(dump.get("num_tree_per_iteration", 1)) != 1 or int(dump.get("num_class", 1)) != 1:
        return False
    if int(dump.get("max_feature_idx", 0)) >= MAX_FEATURES:
        return False
    sizes: list[int] = []
    for tree in dump.get("tree_info", []):
        if int(tree.get("num_leaves", 1)) > MAX_TREE_LEAVES:
            return False
        if tree.get("is_linear") or not _supported_node(tree["tree_structure"], frozenset(), sizes):
            return False
    return sum(sizes) <= MAX_TABLE_VALUES


def _supported_node(node: Mapping[str, Any], path: frozenset[int], sizes: list[int]) -> bool:
    """Numerical splits only; appends each leaf's table size (d·2^d) to ``sizes``."""
    if "split_feature" not in node:
        sizes.append(len(path) * 2 ** len(path))
        return True
    if node.get("decision_type") != "<=" or node.get("missing_type") not in ("None", "NaN"):
        return False
    path = path | {int(node["split_feature"])}
    if len(path) > MAX_PATH_FEATURES:
        return False
    return _supported_node(node["left_child"], path, sizes) and _supported_node(
        node["right_child"], path, sizes
    )


@dataclass
class _Nodes:
    """Splits and leaves of the trees walked so far (nodes numbered within their tree)."""

    split_code: list[int] = field(default_factory=list)
    threshold: list[float] = field(default_factory=list)
    # (node, value, path features, zero fractions) of each leaf
    leaves: list[tuple[int, float, tuple[int, ...], tuple[float, ...]]] = field(
        default_factory=list
    )


def _count(node: Mapping[str, Any]) -> float:
    return float(node["internal_count"] if "split_feature" in node else node["leaf_count"])


def _walk_tree(root: Mapping[str, Any], nodes: _Nodes) -> int:
    """Append one tree's splits and leaves in preorder; returns its number of nodes."""
    # numba kernels: compiled on first explanation, not imported by every model load
    from terraops.domain.tree_shap_kernel import (
        LEFT_SHIFT,
        NAN_LEFT_SHIFT,
        NODE_SHIFT,
        POSITION_SHIFT,
        RIGHT_SHIFT,
    )

    # (node, parent split's index in nodes.split_code, shift of the parent's field)
    stack: list[tuple[Mapping[str, Any], int, int, tuple[int, ...], tuple[float, ...]]] = [
        (root, -1, 0, (), ())
    ]
    count = 0
    while stack:
        node, parent, shift, features, zero = stack.pop()
        index, count = count, count + 1
        if parent >= 0:
            nodes.split_code[parent] |= index << shift
        if "split_feature" not in node:
            nodes.leaves.append((index, float(node["leaf_value"]), features, zero))
            continue
        feature, threshold = int(node["split_feature"]), float(node["threshold"])
        # A NaN with missing type None is read as 0.0: it goes where 0.0 goes.
        nan_left = bool(node["default_left"]) if node["missing_type"] == "NaN" else threshold >= 0
        position = features.index(feature) if feature in features else len(features)
        split = len(nodes.split_code)
        nodes.split_code.append(
            feature
            | (int(nan_left) << NAN_LEFT_SHIFT)
            | (position << POSITION_SHIFT)
            | (index << NODE_SHIFT)
        )
        nodes.threshold.append(threshold)
        child_features = features if position < len(features) else (*features, feature)
        total = float(node["internal_count"])
        # Right pushed first: the left subtree is numbered right after its parent.
        for child, child_shift in (
            (node["right_child"], RIGHT_SHIFT),
            (node["left_child"], LEFT_SHIFT),
        ):
            ratio = _count(child) / total if total > 0 else 0.0
            child_zero = list(zero) if position < len(zero) else [*zero, 1.0]
            child_zero[position] *= ratio
            stack.append((child, split, child_shift, child_features, tuple(child_zero)))
    return count


def _expected_value(node: Mapping[str, Any]) -> float:
    """Cover-weighted mean of the tree's leaves (LightGBM's TreeSHAP bias)."""
    if "split_feature" not in node:
        return float(node["leaf_value"])
    total = float(node["internal_count"])
    left, right = node["left_child"], node["right_child"]
    if total <= 0:
        return 0.5 * (_expected_value(left) + _expected_value(right))
    return (_count(left) * _expected_value(left) + _count(right) * _expected_value(right)) / total


def _quadrature() -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [0, 1]: row ``d`` has ``d // 2 + 1`` points."""
    width = MAX_PATH_FEATURES // 2 + 1
    nodes, weights = np.zeros((2, MAX_PATH_FEATURES + 1, width))
    for d in range(1, MAX_PATH_FEATURES + 1):
        x, w = np.polynomial.legendre.leggauss(d // 2 + 1)
        nodes[d, : x.size], weights[d, : w.size] = (x + 1.0) / 2.0, w / 2.0
    return nodes, weights


def compile_model(dump: Mapping[str, Any], n_features: int) -> TreeShapTables:
    """Tables for :func:`tree_shap` from ``Booster.dump_model()`` (see :func:`supports_model`)."""
    # numba kernels: compiled on first explanation, not imported by every model load
    from terraops.domain.tree_shap_kernel import DEPTH_SHIFT, FEATURES_SHIFT, fill_leaf_tables

    nodes = _Nodes()
    splits, leaves, widest, expected = [0], [0], 1, 0.0
    for tree in dump["tree_info"]:
        widest = max(widest, _walk_tree(tree["tree_structure"], nodes))
        splits.append(len(nodes.split_code))
        leaves.append(len(nodes.leaves))
        expected += _expected_value(tree["tree_structure"])
    depth = np.asarray([len(leaf[2]) for leaf in nodes.leaves], dtype=np.int64)
    sizes = depth << depth  # d · 2^d values per leaf
    offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    feature_start = np.concatenate([[0], np.cumsum(depth)[:-1]]).astype(np.int64)
    table = np.zeros(int(sizes.sum()))
    fill_leaf_tables(
        np.asarray([leaf[1] for leaf in nodes.leaves], dtype=np.float64),
        np.asarray([z for leaf in nodes.leaves for z in leaf[3]], dtype=np.float64),
        depth,
        feature_start,
        offset,
        *_quadrature(),
        table,
    )
    node = np.asarray([leaf[0] for leaf in nodes.leaves], dtype=np.int64)
    return TreeShapTables(
        n_features=n_features,
        expected_value=expected,
        tree_split=np.asarray(splits, dtype=np.int64),
        tree_leaf=np.asarray(leaves, dtype=np.int64),
        split_code=np.asarray(nodes.split_code, dtype=np.int64),
        threshold=np.asarray(nodes.threshold, dtype=np.float64),
        leaf_code=node | (depth << DEPTH_SHIFT) | (feature_start << FEATURES_SHIFT),
        leaf_offset=offset,
        path_feature=np.asarray([f for leaf in nodes.leaves for f in leaf[2]], dtype=np.int32),
        table=table,
        widest_tree=widest,
    )


def tree_shap(tables: TreeShapTables, X: np.ndarray, *, threads: int = 1) -> np.ndarray:
    """(n, features) TreeSHAP contributions of the rows of ``X`` (float64, model columns).

    Their sum plus ``tables.expected_value`` is the model's raw prediction.
    ``threads`` > 1 shares chunks of rows between that many of numba's threads
    (a batch job); 1 runs on the calling thread (a server worker).
    """
    import numba

    # numba kernels: compiled on first explanation, not imported by every model load
    from terraops.domain.tree_shap_kernel import CHUNK_ROWS, explain_parallel, explain_serial

    rows = np.ascontiguousarray(X, dtype=np.float64)
    out = np.zeros((rows.shape[0], tables.n_features))
    if threads > 1 and rows.shape[0] > CHUNK_ROWS:
        most = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
        numba.set_num_threads(max(1, min(threads, most)))
        args = (*tables.kernel_args, numba.get_num_threads())
        explain_parallel(rows, out, *args)
    else:
        explain_serial(rows, out, *tables.kernel_args)
    return out

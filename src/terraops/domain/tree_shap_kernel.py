"""Compiled (numba) kernels of :mod:`terraops.domain.tree_shap`: leaf tables and the row walk.

Why compiled: explaining a row touches every leaf of every tree (a leaf's
Shapley values depend on which of its path's conditions the row meets, not only
on the leaf the row reaches), so a 300-tree model of 31 leaves costs some ten
thousand leaves × their path features per row. A numpy version of the same
walk pays a temporary array per step and per block of rows; here each row
walks each tree once, in node order, carrying one small disagree mask per node,
and adds each leaf's table row (``d`` contiguous values) to its contributions.

Layout (one tree after another; a tree's nodes numbered in preorder, which
the masks buffer ``fails`` is indexed by): the splits of every tree, in
preorder, and the leaves, each as one int64 code. A split's code packs its
feature (bits 0–15), whether a NaN goes left (bit 16), the bit of its feature in
the masks of the paths below (its position, bits 17–20), and its own, left and
right nodes (14 bits each from bit 21); its threshold is beside it. A leaf's
code packs its node (bits 0–13), its number of distinct path features ``d``
(bits 14–17) and its first entry in ``path_feature`` (from bit 18); its table
offset is beside it. A walk thus reads a few sequential streams and does not
branch on the row's values: a single-row call (a server request, where nothing
is in cache) is bound by the table look-ups.

Two ways through a batch:

- a few rows (a point request, up to :data:`PATTERN_ROWS`): each row walks
  every tree (:func:`add_tree`), by chunks of :data:`CHUNK_ROWS` rows and trees
  first inside a chunk (a tree's nodes and tables stay in cache while the
  chunk's rows go through it);
- more rows (map layers, a batch request): a tree's contributions depend only
  on the row's decisions at the tree's splits (a bit pattern), and neighbouring
  cells of a scene share patterns (about one row in seven is new per tree on a
  1024² scene), so each tree keeps a hash table pattern → contributions and
  walks its leaves only for a pattern it has not seen (:func:`_explain_block`).
  :func:`explain_parallel` shares the trees between numba's threads, each
  summing into its own buffer, so every thread sees every row's pattern.

Every function is ``cache=True``: the machine code is written beside this
file (or numba's user cache) the first time and loaded, not compiled, by the
next process.
"""

from __future__ import annotations

import numba
import numpy as np

#: Rows per chunk of the serial walk: their inputs and outputs stay in L1.
CHUNK_ROWS = 64
#: LightGBM reads an input with ``|x| <= kZeroThreshold`` (1e-35 as a C float) as exactly 0.
ZERO_THRESHOLD = float(np.float32(1e-35))
#: Code layouts (see the module docstring): a split's feature, NaN side, bit position,
#: own node, left and right child; a leaf's node, depth and first path feature.
FEATURE_MASK, NAN_LEFT_SHIFT, POSITION_SHIFT = (1 << 16) - 1, 16, 17
NODE_BITS = 14  # nodes of one tree: 16,383 (8,192 leaves)
NODE_MASK = (1 << NODE_BITS) - 1
NODE_SHIFT, LEFT_SHIFT, RIGHT_SHIFT = 21, 21 + NODE_BITS, 21 + 2 * NODE_BITS
DEPTH_SHIFT, FEATURES_SHIFT = NODE_BITS, NODE_BITS + 4
#: Most splits of a tree whose decisions fit one int64 pattern (larger trees are walked per row).
PATTERN_SPLITS = 64
#: Fewer rows than this are walked row by row (a pattern cache would not pay).
PATTERN_ROWS = 256
#: Most cached contribution values of one block (rows × features) in the batch kernel.
BLOCK_VALUES = 4_000_000
_HASH = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64: Fibonacci hashing


@numba.njit(cache=True, nogil=True)
def fill_leaf_tables(
    values: np.ndarray,
    zero: np.ndarray,
    depth: np.ndarray,
    zero_start: np.ndarray,
    offset: np.ndarray,
    nodes: np.ndarray,
    weights: np.ndarray,
    table: np.ndarray,
) -> None:
    """Write each leaf's (2^d, d) table into ``table`` at its ``offset``.

    Row ``m`` of a leaf's table holds, for a row whose *disagree* mask is ``m``
    (bit ``j`` set when it fails some split on the leaf's ``j``-th path feature),
    the leaf's contribution to each of its ``d`` path features:
    ``v (o_i − z_i) ∫₀¹ Π_{j≠i} ((1−t) z_j + t o_j) dt``, integrated exactly by
    the Gauss–Legendre rule ``nodes[d], weights[d]`` on [0, 1] (``d // 2 + 1``
    points for a polynomial of degree ``d − 1``).
    """
    for leaf in range(values.size):
        d = depth[leaf]
        if d == 0:
            continue
        z = zero[zero_start[leaf] : zero_start[leaf] + d]
        prefix, suffix = np.empty(d + 1), np.empty(d + 1)
        integral, factor = np.empty(d), np.empty(d)
        for mask in range(1 << d):
            integral[:] = 0.0
            for q in range(d // 2 + 1):
                t, w = nodes[d, q], weights[d, q]
                for j in range(d):
                    factor[j] = (1.0 - t) * z[j] + (0.0 if (mask >> j) & 1 else t)
                prefix[0], suffix[d] = 1.0, 1.0
                for j in range(d):
                    prefix[j + 1] = prefix[j] * factor[j]
                for j in range(d - 1, -1, -1):
                    suffix[j] = suffix[j + 1] * factor[j]
                for i in range(d):
                    integral[i] += w * prefix[i] * suffix[i + 1]
            base = offset[leaf] + mask * d
            for i in range(d):
                agree = 0.0 if (mask >> i) & 1 else 1.0
                table[base + i] = values[leaf] * (agree - z[i]) * integral[i]


@numba.njit(cache=True, nogil=True)
def _cleaned(X: np.ndarray) -> np.ndarray:
    """A copy of ``X`` as LightGBM reads it: ``|x| <= 1e-35`` is 0.0 (NaN stays NaN)."""
    clean = X.copy()
    for row in range(X.shape[0]):
        for column in range(X.shape[1]):
            if abs(X[row, column]) <= ZERO_THRESHOLD:
                clean[row, column] = 0.0
    return clean


@numba.njit(cache=True, nogil=True, inline="always")
def _goes_left(x: float, threshold: float, code: int) -> int:
    """LightGBM's numerical decision, 1 for left: ``x <= threshold``; NaN → the NaN side."""
    return int(x <= threshold) | (int(x != x) & ((code >> NAN_LEFT_SHIFT) & 1))


@numba.njit(cache=True, nogil=True)
def add_tree(
    x: np.ndarray,
    tree: int,
    tree_split: np.ndarray,
    tree_leaf: np.ndarray,
    split_code: np.ndarray,
    threshold: np.ndarray,
    leaf_code: np.ndarray,
    leaf_offset: np.ndarray,
    path_feature: np.ndarray,
    table: np.ndarray,
    fails: np.ndarray,
    out: np.ndarray,
) -> None:
    """Add one tree's contributions for the (cleaned) row ``x`` to ``out`` (features,).

    First the splits in preorder: each sets its children's disagree masks
    (``fails``, indexed by node within the tree) from its own; then the leaves
    add the table row of their mask. No branch on the row's values.
    """
    fails[0] = 0
    for split in range(tree_split[tree], tree_split[tree + 1]):
        c = split_code[split]
        goes_left = _goes_left(x[c & FEATURE_MASK], threshold[split], c)
        mask = fails[(c >> NODE_SHIFT) & NODE_MASK]
        flag = 1 << ((c >> POSITION_SHIFT) & 15)
        fails[(c >> LEFT_SHIFT) & NODE_MASK] = mask | (flag & (goes_left - 1))
        fails[(c >> RIGHT_SHIFT) & NODE_MASK] = mask | (flag & -goes_left)
    for leaf in range(tree_leaf[tree], tree_leaf[tree + 1]):
        c = leaf_code[leaf]
        d = (c >> DEPTH_SHIFT) & 15
        base = leaf_offset[leaf] + fails[c & NODE_MASK] * d
        features = c >> FEATURES_SHIFT
        for i in range(d):
            out[path_feature[features + i]] += table[base + i]


@numba.njit(cache=True, nogil=True)
def explain_serial(
    X: np.ndarray,
    out: np.ndarray,
    tree_split: np.ndarray,
    tree_leaf: np.ndarray,
    split_code: np.ndarray,
    threshold: np.ndarray,
    leaf_code: np.ndarray,
    leaf_offset: np.ndarray,
    path_feature: np.ndarray,
    table: np.ndarray,
    widest_tree: int,
) -> None:
    """Contributions of every row of ``X`` into ``out`` (zeros on entry), on this thread.

    Up to :data:`PATTERN_ROWS` rows (a point request): the plain walk; more: by
    blocks, each distinct split pattern walked once (see :func:`_explain_block`).
    """
    rows = X.shape[0]
    clean = _cleaned(X)
    if rows > PATTERN_ROWS:
        most = max(CHUNK_ROWS, BLOCK_VALUES // max(1, out.shape[1]))
        for start in range(0, rows, most):
            _explain_block(
                clean,
                out,
                start,
                min(rows, start + most),
                tree_split,
                tree_leaf,
                split_code,
                threshold,
                leaf_code,
                leaf_offset,
                path_feature,
                table,
                widest_tree,
                0,
                tree_split.size - 1,
            )
        return
    fails = np.empty(widest_tree, dtype=np.int64)
    for start in range(0, rows, CHUNK_ROWS):
        for tree in range(tree_split.size - 1):
            for row in range(start, min(rows, start + CHUNK_ROWS)):
                add_tree(
                    clean[row],
                    tree,
                    tree_split,
                    tree_leaf,
                    split_code,
                    threshold,
                    leaf_code,
                    leaf_offset,
                    path_feature,
                    table,
                    fails,
                    out[row],
                )


@numba.njit(cache=True, nogil=True)
def _patterns(
    columns: np.ndarray,
    first: int,
    last: int,
    split_code: np.ndarray,
    threshold: np.ndarray,
    patterns: np.ndarray,
) -> None:
    """Each row's decisions at the splits ``first:last``, one bit per split.

    ``columns`` is (features, rows): the loop over rows is the inner one, and
    vectorises.
    """
    patterns[:] = 0
    for split in range(first, last):
        c = split_code[split]
        column = columns[c & FEATURE_MASK]
        limit = threshold[split]
        bit = split - first
        for row in range(patterns.size):
            patterns[row] |= _goes_left(column[row], limit, c) << bit


@numba.njit(cache=True, nogil=True)
def _explain_block(
    X: np.ndarray,
    out: np.ndarray,
    start: int,
    stop: int,
    tree_split: np.ndarray,
    tree_leaf: np.ndarray,
    split_code: np.ndarray,
    threshold: np.ndarray,
    leaf_code: np.ndarray,
    leaf_offset: np.ndarray,
    path_feature: np.ndarray,
    table: np.ndarray,
    widest_tree: int,
    trees_from: int,
    trees_to: int,
) -> None:
    """Rows ``start:stop`` of the cleaned ``X`` through trees ``trees_from:trees_to``, tree
    by tree, each split pattern walked once."""
    fails = np.empty(widest_tree, dtype=np.int64)
    rows = stop - start
    capacity = 1
    while capacity < 2 * rows:
        capacity *= 2
    shift = 64 - int(np.log2(capacity))
    keys = np.empty(capacity, dtype=np.int64)
    owner = np.full(capacity, -1, dtype=np.int64)  # the tree whose pattern a bucket holds
    slot = np.empty(capacity, dtype=np.int64)
    cached = np.empty((rows, out.shape[1]))
    columns = np.ascontiguousarray(X[start:stop].T)  # (features, rows): patterns in SIMD
    patterns = np.empty(rows, dtype=np.int64)
    for tree in range(trees_from, trees_to):
        first, last = tree_split[tree], tree_split[tree + 1]
        if last - first > PATTERN_SPLITS:
            for row in range(start, stop):
                add_tree(
                    X[row],
                    tree,
                    tree_split,
                    tree_leaf,
                    split_code,
                    threshold,
                    leaf_code,
                    leaf_offset,
                    path_feature,
                    table,
                    fails,
                    out[row],
                )
            continue
        _patterns(columns, first, last, split_code, threshold, patterns)
        used = 0
        for row in range(start, stop):
            pattern = patterns[row - start]
            bucket = ((pattern * _HASH) >> shift) & (capacity - 1)
            while owner[bucket] == tree and keys[bucket] != pattern:
                bucket = (bucket + 1) & (capacity - 1)
            if owner[bucket] != tree:
                owner[bucket], keys[bucket], slot[bucket] = tree, pattern, used
                cached[used] = 0.0
                add_tree(
                    X[row],
                    tree,
                    tree_split,
                    tree_leaf,
                    split_code,
                    threshold,
                    leaf_code,
                    leaf_offset,
                    path_feature,
                    table,
                    fails,
                    cached[used],
                )
                used += 1
            values = cached[slot[bucket]]
            for feature in range(out.shape[1]):
                out[row, feature] += values[feature]


@numba.njit(cache=True, nogil=True, parallel=True)
def explain_parallel(
    X: np.ndarray,
    out: np.ndarray,
    tree_split: np.ndarray,
    tree_leaf: np.ndarray,
    split_code: np.ndarray,
    threshold: np.ndarray,
    leaf_code: np.ndarray,
    leaf_offset: np.ndarray,
    path_feature: np.ndarray,
    table: np.ndarray,
    widest_tree: int,
    threads: int,
) -> None:
    """Contributions of every row into ``out`` (zeros on entry), on numba's threads.

    A batch whose pattern caches fit :data:`BLOCK_VALUES` stays one block of
    rows (the more rows, the more share a pattern) and the threads share the
    trees, each summing into its own buffer; a larger one is cut into blocks of
    rows. ``threads``: numba's thread count (asked for outside: the call inside
    a kernel would keep it from being cached).
    """
    rows, trees = X.shape[0], tree_split.size - 1
    clean = _cleaned(X)
    most = max(CHUNK_ROWS, BLOCK_VALUES // max(1, out.shape[1]))
    if rows <= most:
        parts = max(1, min(threads, trees))
        partial = np.zeros((parts, rows, out.shape[1]))
        for part in numba.prange(parts):
            _explain_block(
                clean,
                partial[part],
                0,
                rows,
                tree_split,
                tree_leaf,
                split_code,
                threshold,
                leaf_code,
                leaf_offset,
                path_feature,
                table,
                widest_tree,
                part * trees // parts,
                (part + 1) * trees // parts,
            )
        for part in range(parts):
            out += partial[part]
        return
    blocks = (rows + most - 1) // most
    size = (rows + blocks - 1) // blocks
    for block in numba.prange(blocks):
        start = block * size
        stop = min(rows, start + size)
        if start < stop:
            _explain_block(
                clean,
                out,
                start,
                stop,
                tree_split,
                tree_leaf,
                split_code,
                threshold,
                leaf_code,
                leaf_offset,
                path_feature,
                table,
                widest_tree,
                0,
                trees,
            )

"""The compiled TreeSHAP walk: every path of it (row by row, by split pattern, on threads,
trees too large for a pattern) gives LightGBM's ``pred_contrib``."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from terraops.domain import tree_shap_kernel
from terraops.domain.tree_shap import compile_model, supports_model, tree_shap


def _booster(num_leaves: int, rounds: int, seed: int) -> lgb.Booster:
    """A real regression model on five inputs, NaNs seen in training on two of them."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (4000, 5))
    X[:, :2][rng.uniform(size=(4000, 2)) < 0.1] = np.nan
    clean = np.nan_to_num(X)
    y = clean @ [1.5, -2.0, 0.8, 0.3, 1.1] + np.sin(3 * clean[:, 2]) * clean[:, 4]
    return lgb.train(
        {
            "objective": "regression",
            "verbose": -1,
            "num_threads": 1,
            "num_leaves": num_leaves,
            "min_data_in_leaf": 5,
        },
        lgb.Dataset(X, y),
        num_boost_round=rounds,
    )


def _rows(n: int, distinct: int, seed: int) -> np.ndarray:
    """``n`` rows drawn from ``distinct`` ones (neighbouring cells repeat split patterns),
    with NaNs and values LightGBM reads as zero among them."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1.2, (distinct, 5))
    base[rng.uniform(size=base.shape) < 0.08] = np.nan
    base[rng.uniform(size=base.shape) < 0.03] = 1e-36
    rows = base[rng.integers(0, distinct, n)]
    rows[::5] += rng.normal(0, 1e-3, (len(rows[::5]), 5))  # near, not equal: same pattern mostly
    return rows


SMALL = _booster(num_leaves=31, rounds=40, seed=3)
SMALL_TABLES = compile_model(SMALL.dump_model(), 5)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_batch_by_split_pattern_equals_pred_contrib_and_the_row_walk(threads: int) -> None:
    n = tree_shap_kernel.PATTERN_ROWS * 3 + 17  # past the single-row path, uneven blocks
    rows = _rows(n, distinct=60, seed=1)
    reference = np.asarray(SMALL.predict(rows, pred_contrib=True))[:, :-1]
    batch = tree_shap(SMALL_TABLES, rows, threads=threads)
    np.testing.assert_allclose(batch, reference, rtol=0, atol=1e-9)
    one_by_one = np.vstack([tree_shap(SMALL_TABLES, row[np.newaxis]) for row in rows[:40]])
    np.testing.assert_allclose(one_by_one, batch[:40], rtol=0, atol=1e-12)


def test_trees_with_more_splits_than_a_pattern_holds_are_walked_row_by_row() -> None:
    deep = _booster(num_leaves=90, rounds=6, seed=4)
    dump = deep.dump_model()
    assert supports_model(dump)
    assert max(t["num_leaves"] for t in dump["tree_info"]) > tree_shap_kernel.PATTERN_SPLITS + 1
    tables = compile_model(dump, 5)
    rows = _rows(tree_shap_kernel.PATTERN_ROWS + 100, distinct=40, seed=2)
    reference = np.asarray(deep.predict(rows, pred_contrib=True))[:, :-1]
    for threads in (1, 2):
        np.testing.assert_allclose(tree_shap(tables, rows, threads=threads), reference, atol=1e-9)


def test_contributions_sum_to_the_raw_prediction() -> None:
    rows = _rows(500, distinct=500, seed=5)
    contributions = tree_shap(SMALL_TABLES, rows, threads=2)
    total = SMALL_TABLES.expected_value + contributions.sum(axis=1)
    np.testing.assert_allclose(total, SMALL.predict(rows), rtol=0, atol=1e-9)


def test_an_empty_batch_has_no_rows() -> None:
    assert tree_shap(SMALL_TABLES, np.zeros((0, 5)), threads=2).shape == (0, 5)


def test_every_kernel_is_cached_on_disk_not_compiled_per_process() -> None:
    """``cache=True`` everywhere: a server's workers load the machine code, they do not
    compile it (numba would silently fall back to compiling on each start)."""
    kernels = [
        tree_shap_kernel.fill_leaf_tables,
        tree_shap_kernel.explain_serial,
        tree_shap_kernel.explain_parallel,
        tree_shap_kernel.add_tree,
    ]
    for kernel in kernels:
        assert type(kernel._cache).__name__ != "NullCache", kernel

"""Fast in-process predictors loaded from a logged MLflow LightGBM model directory.

Why not ``mlflow.pyfunc.load_model``: pyfunc converts every request to a
pandas DataFrame and enforces the signature column by column — tens to
hundreds of µs per row, and the latency objective (SLO.md) is 1.5 ms p95 for the
whole HTTP request. The booster is a plain text file (``model.lgb``); we load
it with LightGBM itself. Batches go through
``booster.predict(X, num_threads=1)`` (one thread because a server runs one
predictor per worker and OpenMP threads fighting for two cores collapse
throughput). A single row — the HTTP point query — goes through LightGBM's
``LGBM_BoosterPredictForMatSingleRowFast`` C entry point, prepared once, which
skips the per-call parameter parsing and predictor set-up that make
``booster.predict`` cost ≈ 60–100 µs for one row of a 300-tree model here.

The training pipeline writes what the predictor needs to know into the
``MLmodel`` file's ``metadata.terraops`` section (``TERRAOPS_METADATA_KEY``):
service name, task, feature order, units, the baseline. The model is logged as
an MLflow pyfunc (:mod:`terraops.adapters.pyfunc_model`) whose ``predict`` is
this very predictor, so ``mlflow.pyfunc`` / ``mlflow models serve`` give the
same numbers as the API; the booster is its artifact ``booster``. Versions
logged with MLflow's LightGBM flavour load too.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from terraops.adapters.uncertainty_bundle import ARTIFACT as UNCERTAINTY_ARTIFACT
from terraops.adapters.uncertainty_bundle import UncertaintyModel, load_uncertainty
from terraops.domain.explain import Explanation
from terraops.domain.tree_shap import TreeShapTables, compile_model, supports_model, tree_shap
from terraops.errors import ConflictError, InvalidInputError, ModelNotFoundError
from terraops.services.lightgbm_models import serving_forest
from terraops.timing import phase

TERRAOPS_METADATA_KEY = "terraops"
#: One TreeSHAP compilation per model at a time (a server's worker threads may ask at once).
_SHAP_LOCK = threading.Lock()

Task = Literal["regression", "binary"]


class SingleRowPredictor:
    """One-row predictions through LightGBM's prepared fast path (a C call, no set-up).

    The prepared configuration is not safe for concurrent use, so calls are
    serialised with a lock (uncontended in an async worker: tens of ns).
    """

    def __init__(self, booster: Any, n_features: int) -> None:
        from lightgbm.basic import _C_API_DTYPE_FLOAT64, _C_API_PREDICT_NORMAL, _LIB, _c_str

        self._lib = _LIB
        self._handle = ctypes.c_void_p()
        self._check(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_C_API_PREDICT_NORMAL),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(-1),  # all iterations
                ctypes.c_int(_C_API_DTYPE_FLOAT64),
                ctypes.c_int32(n_features),
                _c_str("num_threads=1"),
                ctypes.byref(self._handle),
            )
        )
        weakref.finalize(self, _LIB.LGBM_FastConfigFree, self._handle)
        self._booster = booster  # keep the model alive as long as the fast config
        self._n_features = n_features
        self._out = np.zeros(1, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.c_int64(0)
        self._lock = threading.Lock()

    def _check(self, code: int) -> None:
        if code != 0:
            raise RuntimeError(self._lib.LGBM_GetLastError().decode("utf-8"))

    def __call__(self, row: np.ndarray) -> float:
        """Prediction for one contiguous float64 row of ``n_features`` values."""
        with self._lock:
            self._check(
                self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                    self._handle,
                    row.ctypes.data_as(ctypes.c_void_p),
                    ctypes.byref(self._out_len),
                    self._out_ptr,
                )
            )
            return float(self._out[0])


@dataclass(frozen=True)
class Baseline:
    """Which request column the model's output is relative to, and its stand-in value."""

    column: int
    default: float


@dataclass
class Predictor:
    """A loaded model: ``predict(X)`` with X of shape (n, n_features), NaN = not given."""

    service: str
    feature_names: list[str]
    task: Task
    booster: Any  # lightgbm.Booster
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    single_row: SingleRowPredictor | None = None
    baseline: Baseline | None = None
    uncertainty: UncertaintyModel | None = None
    #: The trees compiled for serving (``services.lightgbm_models.serving_forest``), or None.
    compiled: Any = None
    _shap_tables: TreeShapTables | None = field(default=None, init=False, repr=False)
    _shap_compiled: bool = field(default=False, init=False, repr=False)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Regression value or positive-class probability, one per row.

        A model with a baseline sees every column but the baseline's and gets
        the baseline (or its default, where NaN) added to its output.
        """
        arr = np.ascontiguousarray(X, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[1] != len(self.feature_names):
            raise InvalidInputError(
                f"expected rows of {len(self.feature_names)} features "
                f"({', '.join(self.feature_names)}), got shape {arr.shape}"
            )
        offset: float | np.ndarray = 0.0
        if self.baseline is not None:
            values = arr[:, self.baseline.column]
            offset = np.where(np.isfinite(values), values, self.baseline.default)
            arr = np.ascontiguousarray(np.delete(arr, self.baseline.column, axis=1))
        if arr.shape[0] == 1 and self.single_row is not None:
            return np.array([self.single_row(arr[0])]) + offset
        if self.compiled is not None:  # checked equal to LightGBM's predictions at load
            # numba: imported by the first model that compiles, not by every CLI start
            from terraops.domain.compiled_forest import predict as compiled_predict

            return compiled_predict(self.compiled, arr) + offset
        return np.asarray(self.booster.predict(arr, num_threads=1), dtype=np.float64) + offset

    def predict_row(self, row: list[float]) -> float:
        """``predict`` of one row given as a list in feature order (NaN = not given).

        The API's point query: the same numbers as ``predict``, without the
        numpy set-up (``np.delete``, ``np.where``) that cost as much as the
        prepared single-row C call itself.
        """
        if self.single_row is None or len(row) != len(self.feature_names):
            return float(self.predict(np.array([row], dtype=np.float64))[0])
        offset = 0.0
        if self.baseline is not None:
            column = self.baseline.column
            given = row[column]
            offset = given if given - given == 0.0 else self.baseline.default
            row = row[:column] + row[column + 1 :]
        return self.single_row(np.array(row, dtype=np.float64)) + offset

    # ----- uncertainty (calibrated intervals, area of applicability, members) -------------
    @property
    def has_uncertainty(self) -> bool:
        """Whether this version was calibrated (versions trained before were not)."""
        return self.uncertainty is not None

    def _calibrated(self) -> UncertaintyModel:
        if self.uncertainty is None:
            raise ConflictError(
                f"this {self.service} model version has no calibrated intervals or "
                "area of applicability",
                hint=f"train a new version (`terraops train {self.service} ...`) and promote it",
            )
        return self.uncertainty

    def _rows(self, X: np.ndarray) -> np.ndarray:
        arr = np.asarray(X, dtype=np.float64)
        return arr.reshape(1, -1) if arr.ndim == 1 else arr

    def applicability(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dissimilarity index, inside the area of applicability) per row."""
        return self._calibrated().domain.dissimilarity(self._rows(X))

    def interval_with_domain(
        self, X: np.ndarray, level: float = 0.9, prediction: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lower, upper, inside) per row; NaN bounds outside the area of applicability
        and for land-cover classes the calibration could not calibrate (water, when
        held-out cities showed it).

        ``prediction``: ``predict(X)`` when the caller already has it.
        """
        calibrated = self._calibrated()
        arr = self._rows(X)
        centre = self.predict(arr) if prediction is None else np.asarray(prediction, np.float64)
        lower, upper = calibrated.bounds(arr, level, centre)
        _, inside = calibrated.domain.dissimilarity(arr)
        claimed = inside & calibrated.claimed(arr)
        return np.where(claimed, lower, np.nan), np.where(claimed, upper, np.nan), inside

    def interval(self, X: np.ndarray, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of the conformal interval at ``level`` per row (NaN outside
        the area of applicability: no interval is claimed there)."""
        lower, upper, _ = self.interval_with_domain(X, level)
        return lower, upper

    def member_predict(self, X: np.ndarray) -> np.ndarray:
        """``(K, n)`` predictions of the K leave-one-city-out models."""
        arr = self._rows(X)
        members = self._calibrated().members
        if not members:
            raise ConflictError(f"this {self.service} model version keeps no member models")
        return np.vstack([member(arr) for member in members])

    def explain(
        self, X: np.ndarray, *, block_rows: int = 16_384, num_threads: int = 1
    ) -> Explanation:
        """Per-row TreeSHAP contributions with ``baseline + Σ contributions == predict(X)``.

        Exact path-dependent TreeSHAP from :mod:`terraops.domain.tree_shap` (the
        values of LightGBM's ``pred_contrib``, several times faster; models it
        cannot reproduce stay on ``pred_contrib``), ``block_rows`` rows at a
        time, so the (rows × features) output stays a few MB whatever ``X``
        holds. ``num_threads``: 1 in a server worker (like :meth:`predict`); a
        batch job (the map layers) may pass 0, "every core".

        - Regression: contributions are in the prediction's unit. A baseline
          column (UHI's day reference) is an offset, not a model input: the
          explanation's baseline is the model's expected value plus the column's
          default (a typical day), and the column contributes the value used
          minus that default (0 when not given or on a typical day).
        - Binary: TreeSHAP is additive in log-odds, not in probability. Each
          row's log-odds contributions are scaled by ``(p − p0) / (z − z0)``
          (``z`` its log-odds, ``z0`` the expected log-odds, ``p = σ(z)``,
          ``p0 = σ(z0)``; the slope ``σ'(z0)`` where ``z ≈ z0``): they then sum
          to ``p − p0`` in probability with their signs and proportions kept,
          and the baseline is ``p0``.
        """
        arr = np.ascontiguousarray(X, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[1] != len(self.feature_names):
            raise InvalidInputError(
                f"expected rows of {len(self.feature_names)} features "
                f"({', '.join(self.feature_names)}), got shape {arr.shape}"
            )
        unit = str(self.metadata.get("prediction_unit") or "")
        unit = unit or ("probability" if self.task == "binary" else "prediction unit")
        if arr.shape[0] == 1 and self.task == "regression":
            tables = self._tree_shap_tables()
            if tables is not None:  # a point request: no per-block numpy set-up
                return self._explain_row(arr[0], tables, unit)
        baseline = np.empty(arr.shape[0])
        contributions = np.empty(arr.shape)
        for start in range(0, arr.shape[0], max(1, block_rows)):
            stop = start + max(1, block_rows)
            block = arr[start:stop]
            baseline[start:stop], contributions[start:stop] = self._explain_block(
                block, num_threads
            )
        return Explanation(baseline, contributions, unit, tuple(self.feature_names))

    def _tree_shap_tables(self) -> TreeShapTables | None:
        """The model compiled for :func:`tree_shap` (built once, by
        :meth:`prepare_explanations` or on first use), or None.

        The same values as LightGBM's ``pred_contrib`` (the reference the tests
        hold it to) at several times its speed; models it cannot reproduce
        exactly (categorical splits, several outputs...) get None and stay on
        ``pred_contrib``.
        """
        if not self._shap_compiled:
            with _SHAP_LOCK:
                if not self._shap_compiled:
                    dump = self.booster.dump_model()
                    if supports_model(dump):
                        self._shap_tables = compile_model(dump, int(self.booster.num_feature()))
                    self._shap_compiled = True
        return self._shap_tables

    def _explain_row(self, row: np.ndarray, tables: TreeShapTables, unit: str) -> Explanation:
        """:meth:`explain` of one regression row (the same values as its block path)."""
        names = tuple(self.feature_names)
        if self.baseline is None:
            contributions = tree_shap(tables, row[np.newaxis])
            return Explanation(np.array([tables.expected_value]), contributions, unit, names)
        column, default = self.baseline.column, self.baseline.default
        model_row = np.concatenate((row[:column], row[column + 1 :]))
        inner = tree_shap(tables, model_row[np.newaxis])[0]
        given = float(row[column])
        offset = given if math.isfinite(given) else default
        contributions = np.concatenate((inner[:column], [offset - default], inner[column:]))
        baseline = np.array([tables.expected_value + default])
        return Explanation(baseline, contributions[np.newaxis], unit, names)

    def prepare_explanations(self) -> None:
        """Build the TreeSHAP tables and load its compiled kernel now (a server, at
        model load), so that the first ``?explain=true`` request does not pay them."""
        tables = self._tree_shap_tables()
        if tables is not None:
            tree_shap(tables, np.zeros((1, int(self.booster.num_feature()))))

    def _explain_block(self, arr: np.ndarray, num_threads: int) -> tuple[np.ndarray, np.ndarray]:
        """(baseline, contributions in feature order) of one block (see :meth:`explain`)."""
        offset = np.zeros(arr.shape[0])
        if self.baseline is not None:
            column = self.baseline.column
            values = arr[:, column]
            offset = np.where(np.isfinite(values), values, self.baseline.default)
            arr = np.concatenate([arr[:, :column], arr[:, column + 1 :]], axis=1)
        inputs = np.ascontiguousarray(arr)
        tables = self._tree_shap_tables()
        if tables is not None:
            threads = num_threads if num_threads > 0 else (os.cpu_count() or 1)
            contributions = tree_shap(tables, inputs, threads=threads)
            expected = np.full(inputs.shape[0], tables.expected_value)
        else:
            raw = self.booster.predict(inputs, pred_contrib=True, num_threads=num_threads)
            raw = np.asarray(raw, dtype=np.float64)
            expected, contributions = raw[:, -1], raw[:, :-1]
        if self.task == "binary":
            margin = contributions.sum(axis=1)
            z0, z = expected, expected + margin
            p0, p = 1.0 / (1.0 + np.exp(-z0)), 1.0 / (1.0 + np.exp(-z))
            flat = np.abs(margin) < 1e-12
            scale = np.where(flat, p0 * (1.0 - p0), (p - p0) / np.where(flat, 1.0, margin))
            expected, contributions = p0, contributions * scale[:, np.newaxis]
        if self.baseline is None:
            return expected, contributions
        default = self.baseline.default
        full = np.insert(contributions, self.baseline.column, offset - default, axis=1)
        return expected + default, full


def read_model_metadata(path: Path) -> dict[str, Any]:
    """The ``MLmodel`` file of a model directory, parsed."""
    mlmodel = Path(path) / "MLmodel"
    if not mlmodel.is_file():
        raise ModelNotFoundError(
            f"{path} is not an MLflow model directory (no MLmodel file)",
            hint="fetch it with ModelRegistry.fetch_model(service, version)",
        )
    loaded = yaml.safe_load(mlmodel.read_text())
    return loaded if isinstance(loaded, dict) else {}


def booster_file(path: Path, mlmodel: dict[str, Any]) -> Path | None:
    """The LightGBM model file of a terraops pyfunc (or legacy LightGBM-flavour) directory."""
    flavors = mlmodel.get("flavors") or {}
    artifacts = (flavors.get("python_function") or {}).get("artifacts") or {}
    if "booster" in artifacts:
        return Path(path) / str(artifacts["booster"]["path"])
    if "lightgbm" in flavors:
        return Path(path) / str(flavors["lightgbm"].get("data", "model.lgb"))
    return None


@phase("load model")
def load_predictor(path: Path) -> Predictor:
    """Load the LightGBM booster and terraops metadata from an MLflow model directory."""
    path = Path(path)
    mlmodel = read_model_metadata(path)
    model_file = booster_file(path, mlmodel)
    meta = (mlmodel.get("metadata") or {}).get(TERRAOPS_METADATA_KEY)
    if model_file is None or not meta:
        raise ModelNotFoundError(
            f"{path} is not a terraops LightGBM model (no booster artifact or terraops metadata)",
            hint="train it with `terraops train SERVICE`",
        )
    predictor = predictor_from(model_file, meta, path)
    predictor.compiled = serving_forest(predictor.booster, f"{predictor.service} model {path}")
    folder = uncertainty_folder(path, mlmodel)
    if folder is not None and meta.get("uncertainty"):
        plain = {k: v for k, v in meta.items() if k != "uncertainty"}

        def member(file: Path) -> Any:
            return predictor_from(file, plain, path).predict

        predictor.uncertainty = load_uncertainty(folder, predictor.feature_names, member)
        required = [str(n) for n in meta.get("required_features") or predictor.feature_names]
        predictor.uncertainty.warm(required)
    return predictor


def uncertainty_folder(path: Path, mlmodel: dict[str, Any]) -> Path | None:
    """The calibration artifact folder of a model directory (None: the version has none)."""
    flavors = mlmodel.get("flavors") or {}
    artifacts = (flavors.get("python_function") or {}).get("artifacts") or {}
    if UNCERTAINTY_ARTIFACT not in artifacts:
        return None
    folder = Path(path) / str(artifacts[UNCERTAINTY_ARTIFACT]["path"])
    return folder if folder.is_dir() else None


def predictor_from(model_file: Path, meta: dict[str, Any], path: Path) -> Predictor:
    """A predictor of one booster file described by its terraops metadata."""
    import lightgbm as lgb

    booster = lgb.Booster(model_file=str(model_file))
    feature_names = [str(n) for n in meta["feature_names"]]
    baseline = None
    if meta.get("baseline"):
        name = str(meta["baseline"]["feature"])
        baseline = Baseline(feature_names.index(name), float(meta["baseline"]["default"]))
    n_inputs = len(feature_names) - (baseline is not None)
    if booster.num_feature() != n_inputs:
        raise ModelNotFoundError(
            f"{model_file} expects {booster.num_feature()} features, "
            f"metadata lists {n_inputs} model inputs"
        )
    return Predictor(
        service=str(meta["service"]),
        feature_names=feature_names,
        task=meta["task"],
        booster=booster,
        path=path,
        metadata=dict(meta),
        single_row=SingleRowPredictor(booster, n_inputs),
        baseline=baseline,
    )

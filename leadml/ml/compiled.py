"""Score the estimator's input matrix with numpy alone, for a few records at a time.

Called on one record, scikit-learn spends most of the time around the arithmetic: input
validation on every call, a joblib dispatch per forest, one Cython call per tree of a
boosted model (200 of them), response-method lookups inside the calibration. The model
itself is a few hundred comparisons or one matrix product. `compile_scorer` reads the
fitted estimator (and the lead models' calibration) once into flat arrays, and
`CompiledScorer.predict` then maps the matrix `leadml.ml.fastpath` builds to the served
output in a handful of vectorised numpy operations:

- forests (`RandomForestClassifier`/`Regressor`) and histogram gradient boosting
  (`HistGradientBoostingClassifier`/`Regressor`): every tree's nodes in one set of flat
  arrays (`TreeEnsemble`), traversed level by level over all records and all trees at
  once. The comparisons are sklearn's: forests compare the input *cast to float32* with
  float64 thresholds (sklearn casts X to float32 for trees), boosting compares the raw
  float64 input with `num_threshold`; a missing value follows `missing_go_to_left`. The
  trees' outputs are added in sklearn's order (a sequential sum, not numpy's pairwise
  one), the boosting baseline first, and forests divide by the number of trees.
- `LogisticRegression`, `Ridge`: the same matrix product sklearn computes.
- `MLPClassifier`/`MLPRegressor` (also inside `TransformedTargetRegressor` with a
  `StandardScaler` on the target): the layers' products and activations, then the
  scaler's inverse.
- `EstimateRegressor` (the BTYD estimate): the one input column.
- the lead models' `CalibratedClassifierCV` (one calibrated classifier, as
  `ModelBundle.predict_matrix` applies it): it reads `decision_function` when the
  estimator has one (boosting, logistic regression) and the class-1 probability
  otherwise (forests, the MLP), as sklearn's response lookup does; then Platt's
  `expit(-(a·t + b))` or the isotonic step function (`np.interp` over the fitted
  thresholds after clipping to the training range, which is what scipy's `interp1d`
  runs there).
- lifetime values are clipped at zero, as `ModelBundle.predict` serves them.

Each scorer splits in two, `margin` (the model's raw output: log-odds for boosting and
logistic regression, the averaged class-1 probability of a forest, the value for
regressors) and `served` (margin to served output: link, calibration, clip), which is
what exact tree explanations (leadml.ml.treeshap) need.

Inputs sklearn would refuse (values that are not finite where the estimator requires
them, numbers beyond float32 for trees, a wrong width) are not scored here: `predict`
returns None and the caller asks sklearn, which raises its usual error.

Parity is checked, not assumed: `verify_scorer` compares the compiled output with the
pipeline's served output on held-out rows at training (`train_model` stores the result
as `ModelBundle.serving`), and a scorer that differs by more than `PARITY_TOLERANCE`, or
an estimator this module does not know, leaves the version on sklearn.

Above a few hundred records sklearn's compiled tree loops win (`FOREST_MAX_ROWS`,
`BOOSTING_MAX_ROWS`, measured), so `ModelBundle.predict_matrix` uses a scorer only up to
its `max_rows`.

It stays one module past 400 lines: every compiled form keeps the one contract above
(`margin`, `served`, None for inputs sklearn must judge), and that contract, the parity
check and the classes it describes read best in one place.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import sklearn
from scipy.interpolate import interp1d
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression, Ridge, TweedieRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags

from leadml.ml import native
from leadml.ml.pipeline import EstimateRegressor
from leadml.ml.types import ServingCheck

# Largest absolute difference from the pipeline's served output a compiled scorer may
# show on the held-out rows. The arithmetic is sklearn's own, so real differences are
# zero or a few ulps; anything near this bound means the compilation is wrong.
PARITY_TOLERANCE = 1e-9
# Records per call up to which a compiled scorer serves, by kind of model: where it
# stops winning. Measured with one thread (threadpoolctl) on the shared 2-core machine,
# demo lead models trained on 3,000 rows, compiled vs sklearn (predict_matrix's path):
#   forest, 150 full-depth trees:     1 row 0.28 vs 16 ms, 10 rows 0.9 vs 9.9 ms,
#     100 rows 5.4 vs 17 ms, 1,000 rows 70 vs 55 ms, 10,000 rows 390 vs 180 ms
#   boosting, 200 trees of 31 leaves: 1 row 0.11 vs 2.2 ms, 10 rows 0.28 vs 2.3 ms,
#     100 rows 2.4 vs 3.1 ms, 1,000 rows 23 vs 9.9 ms, 10,000 rows 310 vs 65 ms
#   logistic regression (calibrated): 1 row 0.008 vs 1.6 ms, 10,000 rows 0.6 vs 1.9 ms
#   MLP, 32 hidden units (calibrated): 1 row 0.03 vs 2.0 ms, 10,000 rows 3.0 vs 5.2 ms
# Trees: past a few hundred rows the traversal's memory traffic outgrows sklearn's
# per-call overhead. Linear models and MLPs are sklearn's own products without its
# checks, faster at every size.
FOREST_MAX_ROWS = 500
BOOSTING_MAX_ROWS = 100
DENSE_MAX_ROWS = 100_000
# Rows of the reference sample a version trained before this module is verified on
# when it is first used: enough to reach most leaves, quick enough for a first request.
LAZY_CHECK_ROWS = 1000
# Held-out rows scored per compiled call at the gate (bounds the traversal's memory).
GATE_CHUNK_ROWS = 2000


class NotCompilable(ValueError):
    """The estimator (or its calibration) is not one this module reproduces exactly."""


class MarginModel(Protocol):
    """What every compiled model part gives: its margin, or None for inputs sklearn must judge."""

    n_features: int

    def margin(self, matrix: np.ndarray) -> np.ndarray | None: ...


@dataclass(frozen=True, eq=False)
class TreeEnsemble:
    """Every tree of a forest or a boosted model as flat node arrays (global node ids).

    Leaves point to themselves, so a record that reaches one early stays there while the
    other trees finish; `depth` levels take every record to a leaf in every tree.
    """

    feature: np.ndarray  # int64 per node (0 at leaves)
    threshold: np.ndarray  # float64 per node: go left when value <= threshold
    missing_left: np.ndarray  # bool per node: where a missing value goes
    children: np.ndarray  # int64 (nodes, 2): left, right (a leaf: itself twice)
    is_leaf: np.ndarray  # bool per node
    value: np.ndarray  # float64 per node: the leaf's output (0 inside the tree)
    roots: np.ndarray  # int64 per tree
    depth: int  # edges on the longest root-to-leaf path
    n_features: int
    float32_inputs: bool  # forests: sklearn compares float32(X) with the thresholds
    allows_missing: bool  # whether sklearn accepts NaN inputs for this model
    offset: float  # boosting: the baseline prediction; forests: 0
    averaged: bool  # forests: the mean of the trees; boosting: the sum plus the offset

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    def comparable(self, matrix: np.ndarray) -> np.ndarray | None:
        """Return the values as sklearn compares them with thresholds, or None if it refuses them."""
        if not _is_matrix(matrix, self.n_features):
            return None
        if self.float32_inputs:
            with np.errstate(over="ignore"):  # overflow to inf is refused just below
                values = matrix.astype(np.float32).astype(np.float64)
            finite = np.isfinite(values)
            if not finite.all() and (np.isinf(values).any() or not self.allows_missing):
                return None
            return values
        return matrix  # boosting reads float64 as it is, NaN and infinities included

    def leaves(self, values: np.ndarray) -> np.ndarray:
        """(records × trees) node id of the leaf each record reaches in each tree."""
        reached_native = native.leaves(self, values)
        if reached_native is not None:
            return reached_native
        rows, trees = len(values), self.n_trees
        flat = values.ravel()
        has_missing = bool(np.isnan(flat).any())
        children = self.children.ravel()  # node n's children at 2n (left) and 2n + 1
        reached = np.empty(rows * trees, dtype=np.int64)
        # One entry per (record, tree) still inside its tree; every few levels the ones
        # at a leaf are set aside, so short paths stop costing (a forest's depths vary 3×).
        node = np.tile(self.roots, rows)
        position = np.arange(rows * trees)
        offset = np.repeat(np.arange(rows, dtype=np.int64) * self.n_features, trees)
        for level in range(self.depth):
            value = flat[offset + self.feature[node]]
            go_right = ~(value <= self.threshold[node])  # NaN goes right here, fixed below
            if has_missing:
                go_right &= ~(np.isnan(value) & self.missing_left[node])
            node = children[2 * node + go_right]
            if level % 4 == 3:
                done = self.is_leaf[node]
                reached[position[done]] = node[done]
                node, position, offset = node[~done], position[~done], offset[~done]
                if not len(node):
                    break
        reached[position] = node
        return reached.reshape(rows, trees)

    def margin(self, matrix: np.ndarray) -> np.ndarray | None:
        values = self.comparable(matrix)
        if values is None:
            return None
        outputs = self.value[self.leaves(values)]
        if self.averaged:
            # sklearn adds tree by tree into zeros, then divides: a sequential sum.
            return np.cumsum(outputs, axis=1)[:, -1] / self.n_trees
        start = np.full((len(outputs), 1), self.offset)
        return np.cumsum(np.hstack([start, outputs]), axis=1)[:, -1]


@dataclass(frozen=True, eq=False)
class LinearMargin:
    """`X @ coef + intercept`, with the operand shapes sklearn uses (they decide the BLAS call)."""

    coef: np.ndarray  # logistic regression: coef_.T (features × 1); ridge: coef_ (features,)
    intercept: np.ndarray | float
    n_features: int

    def margin(self, matrix: np.ndarray) -> np.ndarray | None:
        if not _is_matrix(matrix, self.n_features) or not np.isfinite(matrix).all():
            return None
        return np.reshape(matrix @ self.coef + self.intercept, (-1,))


@dataclass(frozen=True, eq=False)
class PerceptronMargin:
    """An MLP's forward pass up to the output activation (the logit for a classifier)."""

    coefs: tuple[np.ndarray, ...]
    intercepts: tuple[np.ndarray, ...]
    activation: str
    n_features: int
    # TransformedTargetRegressor's StandardScaler, undone as its inverse_transform does.
    target_scale: float | None = None
    target_mean: float | None = None

    def margin(self, matrix: np.ndarray) -> np.ndarray | None:
        if not _is_matrix(matrix, self.n_features) or not np.isfinite(matrix).all():
            return None
        activation = matrix
        last = len(self.coefs) - 1
        for layer, (coef, intercept) in enumerate(zip(self.coefs, self.intercepts)):
            activation = activation @ coef
            activation += intercept
            if layer != last:
                _HIDDEN_ACTIVATIONS[self.activation](activation)
        output = activation[:, 0].copy()
        if self.target_scale is not None:
            output *= self.target_scale
        if self.target_mean is not None:
            output += self.target_mean
        return output


@dataclass(frozen=True, eq=False)
class ColumnMargin:
    """EstimateRegressor: the estimate computed upstream is the only input column."""

    n_features: int = 1

    def margin(self, matrix: np.ndarray) -> np.ndarray | None:
        if not _is_matrix(matrix, self.n_features):
            return None
        return np.asarray(matrix, dtype=float)[:, 0]


@dataclass(frozen=True, eq=False)
class SigmoidCalibration:
    a: float
    b: float

    def __call__(self, response: np.ndarray) -> np.ndarray:
        return expit(-(self.a * response + self.b))


@dataclass(frozen=True, eq=False)
class IsotonicCalibration:
    x: np.ndarray  # the interpolation's knots, as scipy's interp1d holds them
    y: np.ndarray
    low: float  # X_min_, X_max_: out_of_bounds="clip"
    high: float

    def __call__(self, response: np.ndarray) -> np.ndarray:
        clipped = np.clip(response, self.low, self.high)
        if len(self.y) == 1:
            return np.repeat(self.y, clipped.shape).astype(clipped.dtype)
        result = np.interp(clipped, self.x, self.y)
        # interp1d(bounds_error=False) fills NaN outside the knots; after the clip that
        # only happens if the knots do not span the training range.
        result[(clipped < self.x[0]) | (clipped > self.x[-1])] = np.nan
        return result.astype(clipped.dtype)


@dataclass(frozen=True, eq=False)
class CompiledScorer:
    """An estimator (and calibration) compiled to numpy: matrix -> served output."""

    model: MarginModel  # TreeEnsemble | LinearMargin | PerceptronMargin | ColumnMargin
    estimator_name: str
    classification: bool
    # Classifiers: whether the margin is a log-odds (turned into a probability by expit)
    # or already the class-1 probability (forests).
    logit_margin: bool = False
    calibration: SigmoidCalibration | IsotonicCalibration | None = None
    # What the calibration reads: decision_function (the margin) or predict_proba.
    calibration_reads_margin: bool = False
    max_rows: int = DENSE_MAX_ROWS  # larger inputs are faster through sklearn
    # Regressors with a log link (Poisson boosting, the Tweedie GLM): the value is exp(margin).
    log_link: bool = False

    def margin(self, matrix: np.ndarray) -> np.ndarray | None:
        """Return the model's raw output for each row, or None for inputs sklearn must judge."""
        return self.model.margin(matrix)

    def served(self, margin: np.ndarray) -> np.ndarray:
        """Return the served output (probability or clipped value) for margins."""
        if not self.classification:
            return np.clip(np.exp(margin) if self.log_link else margin, 0.0, None)
        probability = expit(margin) if self.logit_margin else margin
        if self.calibration is None:
            return probability
        return self.calibration(margin if self.calibration_reads_margin else probability)

    def predict(self, matrix: np.ndarray) -> np.ndarray | None:
        """Return what `ModelBundle.predict_matrix` serves, or None for inputs sklearn must judge."""
        margin = self.margin(matrix)
        return None if margin is None else self.served(margin)

    def slope(self, margin: float) -> float:
        """Served output per unit of margin near `margin` (a central difference)."""
        step = 1e-6 * max(1.0, abs(margin))
        low, high = self.served(np.array([margin - step, margin + step]))
        return float((high - low) / (2 * step))


def compile_scorer(*, estimator: Any, calibrator: Any, classification: bool) -> CompiledScorer:
    """Compile a fitted estimator and its calibration; raise NotCompilable for unknown ones."""
    name = type(estimator).__name__
    calibration = None
    reads_margin = False
    if classification:
        classes = getattr(estimator, "classes_", None)
        if classes is None or len(classes) != 2:
            raise NotCompilable(f"{name} is not a fitted binary classifier")
        if calibrator is not None:
            calibration, reads_margin = _compile_calibration(calibrator, estimator)
    model, logit, log_link, max_rows = _compile_model(estimator, classification)
    return CompiledScorer(
        model=model,
        estimator_name=name,
        classification=classification,
        logit_margin=logit,
        calibration=calibration,
        calibration_reads_margin=reads_margin,
        max_rows=max_rows,
        log_link=log_link,
    )


def _compile_model(estimator: Any, classification: bool) -> tuple[Any, bool, bool, int]:
    """(margin model, margin is a logit, margin is a log, most rows numpy serves faster) of a fitted estimator."""
    if isinstance(estimator, (RandomForestClassifier, RandomForestRegressor)):
        return _forest(estimator, classification), False, False, FOREST_MAX_ROWS
    if isinstance(estimator, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        log_link = not classification and type(estimator._loss.link).__name__ == "LogLink"
        return _boosting(estimator, classification), classification, log_link, BOOSTING_MAX_ROWS
    if isinstance(estimator, LogisticRegression) and classification:
        if estimator.coef_.shape[0] != 1:
            raise NotCompilable("logistic regression with more than one coefficient row")
        return LinearMargin(estimator.coef_.T, estimator.intercept_, estimator.coef_.shape[1]), True, False, DENSE_MAX_ROWS
    if isinstance(estimator, Ridge) and not classification:
        if np.ndim(estimator.coef_) != 1:
            raise NotCompilable("ridge with several targets")
        return LinearMargin(estimator.coef_, estimator.intercept_, len(estimator.coef_)), False, False, DENSE_MAX_ROWS
    if isinstance(estimator, TweedieRegressor) and not classification:
        link = type(estimator._base_loss.link).__name__
        if link not in ("LogLink", "IdentityLink"):
            raise NotCompilable(f"Tweedie regression with the {link} link")
        model = LinearMargin(estimator.coef_, estimator.intercept_, len(estimator.coef_))
        return model, False, link == "LogLink", DENSE_MAX_ROWS
    if isinstance(estimator, MLPClassifier) and classification:
        return _perceptron(estimator, "logistic"), True, False, DENSE_MAX_ROWS
    if isinstance(estimator, MLPRegressor) and not classification:
        return _perceptron(estimator, "identity"), False, False, DENSE_MAX_ROWS
    if isinstance(estimator, TransformedTargetRegressor) and not classification:
        return _transformed_perceptron(estimator), False, False, DENSE_MAX_ROWS
    if isinstance(estimator, EstimateRegressor) and not classification:
        return ColumnMargin(getattr(estimator, "n_features_in_", 1)), False, False, DENSE_MAX_ROWS
    kind = "classifier" if classification else "regressor"
    raise NotCompilable(f"{type(estimator).__name__} is not an estimator leadml.ml.compiled knows as a {kind}")


def verify_scorer(scorer: CompiledScorer, matrix: np.ndarray, served: np.ndarray) -> ServingCheck:
    """Compare a compiled scorer with the served outputs sklearn gave for the same rows."""
    served = np.asarray(served, dtype=float)
    if len(matrix) == 0:
        return _check(False, None, 0, "no rows to verify the compiled scorer on")
    worst = 0.0
    for start in range(0, len(matrix), GATE_CHUNK_ROWS):
        compiled = scorer.predict(np.ascontiguousarray(matrix[start : start + GATE_CHUNK_ROWS], dtype=float))
        if compiled is None:
            return _check(False, None, len(matrix), "the compiled scorer refused rows that sklearn scored")
        expected = served[start : start + GATE_CHUNK_ROWS]
        both_missing = np.isnan(compiled) & np.isnan(expected)
        difference = np.where(both_missing, 0.0, np.abs(compiled - expected))
        worst = max(worst, float(np.max(np.nan_to_num(difference, nan=np.inf))))
    if not math.isfinite(worst):
        return _check(False, None, len(matrix), "the compiled scorer gave a missing value where sklearn did not")
    if worst > PARITY_TOLERANCE:
        return _check(
            False,
            worst,
            len(matrix),
            f"the compiled {scorer.estimator_name} differs from the pipeline by up to {worst:.3g} "
            f"(more than {PARITY_TOLERANCE:g}); serving through scikit-learn",
        )
    return _check(
        True,
        worst,
        len(matrix),
        f"the compiled {scorer.estimator_name} reproduces the pipeline on {len(matrix)} rows; "
        f"it serves up to {scorer.max_rows} records per call",
    )


def refused(reason: str) -> ServingCheck:
    """The check of a version that serves through sklearn without a comparison."""
    return _check(False, None, 0, reason)


def _check(compiled: bool, difference: float | None, rows: int, reason: str) -> ServingCheck:
    return ServingCheck(
        compiled=compiled,
        max_abs_difference=difference,
        rows=rows,
        reason=reason,
        sklearn_version=sklearn.__version__,
    )


def _is_matrix(matrix: Any, width: int) -> bool:
    return (
        isinstance(matrix, np.ndarray)
        and matrix.ndim == 2
        and matrix.dtype == np.float64
        and matrix.shape[1] == width
    )


def _forest(forest: RandomForestClassifier | RandomForestRegressor, classification: bool) -> TreeEnsemble:
    if forest.n_outputs_ != 1:
        raise NotCompilable("forest with several outputs")
    # The trees are fitted on the forest's encoded classes: column 1 is classes_[1].
    if classification and any(tree.tree_.value.shape[2] != 2 for tree in forest.estimators_):
        raise NotCompilable("forest whose trees do not predict two classes")
    parts: list[_TreeArrays] = []
    for tree in forest.estimators_:
        nodes = tree.tree_
        values = nodes.value[:, 0, 1] if classification else nodes.value[:, 0, 0]
        parts.append(
            (
                nodes.children_left == -1,
                nodes.feature,
                nodes.threshold,
                nodes.missing_go_to_left.astype(bool),
                nodes.children_left,
                nodes.children_right,
                values,
                int(nodes.max_depth),
            )
        )
    allows_missing = bool(get_tags(forest.estimators_[0]).input_tags.allow_nan)
    return _ensemble(parts, forest.n_features_in_, float32_inputs=True, allows_missing=allows_missing,
                     offset=0.0, averaged=True)


def _boosting(model: HistGradientBoostingClassifier | HistGradientBoostingRegressor, classification: bool) -> TreeEnsemble:
    if model.n_trees_per_iteration_ != 1:
        raise NotCompilable("boosting with several trees per iteration (multiclass)")
    if getattr(model, "is_categorical_", None) is not None and np.any(model.is_categorical_):
        raise NotCompilable("boosting with native categorical splits")
    link = type(model._loss.link).__name__
    if link not in (("LogitLink",) if classification else ("IdentityLink", "LogLink")):
        raise NotCompilable(f"boosting with the {link} link")
    parts: list[_TreeArrays] = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        is_leaf = nodes["is_leaf"].astype(bool)
        if np.any(nodes["is_categorical"][~is_leaf]):
            raise NotCompilable("boosting with categorical splits")
        parts.append(
            (
                is_leaf,
                nodes["feature_idx"],
                nodes["num_threshold"],
                nodes["missing_go_to_left"].astype(bool),
                nodes["left"].astype(np.int64),
                nodes["right"].astype(np.int64),
                nodes["value"],
                int(nodes["depth"].max()),
            )
        )
    baseline = np.ravel(model._baseline_prediction)
    return _ensemble(parts, model.n_features_in_, float32_inputs=False, allows_missing=True,
                     offset=float(baseline[0]), averaged=False)


# One tree as _ensemble reads it: is_leaf, feature, threshold, missing_go_to_left, left and
# right children, value per node, and the tree's depth.
_TreeArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]


def _ensemble(
    parts: list[_TreeArrays],
    n_features: int,
    *,
    float32_inputs: bool,
    allows_missing: bool,
    offset: float,
    averaged: bool,
) -> TreeEnsemble:
    features, thresholds, missing, children, leaves, values, roots = [], [], [], [], [], [], []
    start = 0
    depth = 0
    for is_leaf, feature, threshold, missing_left, left, right, value, tree_depth in parts:
        count = len(is_leaf)
        own = np.arange(start, start + count, dtype=np.int64)
        roots.append(start)
        leaves.append(is_leaf)
        features.append(np.where(is_leaf, 0, feature).astype(np.int64))
        thresholds.append(np.where(is_leaf, np.inf, threshold).astype(np.float64))
        missing.append(np.where(is_leaf, True, missing_left))
        children.append(
            np.column_stack(
                [np.where(is_leaf, own, np.asarray(left, dtype=np.int64) + start),
                 np.where(is_leaf, own, np.asarray(right, dtype=np.int64) + start)]
            )
        )
        values.append(np.where(is_leaf, value, 0.0).astype(np.float64))
        depth = max(depth, tree_depth)
        start += count
    feature_array = np.concatenate(features)
    if len(feature_array) and (feature_array.min() < 0 or feature_array.max() >= n_features):
        raise NotCompilable("tree split on a column outside the input")
    return TreeEnsemble(
        feature=feature_array,
        threshold=np.concatenate(thresholds),
        missing_left=np.concatenate(missing),
        children=np.ascontiguousarray(np.concatenate(children)),
        is_leaf=np.concatenate(leaves),
        value=np.concatenate(values),
        roots=np.asarray(roots, dtype=np.int64),
        depth=depth,
        n_features=int(n_features),
        float32_inputs=float32_inputs,
        allows_missing=allows_missing,
        offset=offset,
        averaged=averaged,
    )


def _perceptron(model: MLPClassifier | MLPRegressor, output: str) -> PerceptronMargin:
    if model.activation not in _HIDDEN_ACTIVATIONS:
        raise NotCompilable(f"MLP activation {model.activation!r}")
    if model.out_activation_ != output or model.n_outputs_ != 1:
        raise NotCompilable(f"MLP output {model.out_activation_!r} with {model.n_outputs_} outputs")
    return PerceptronMargin(
        coefs=tuple(model.coefs_),
        intercepts=tuple(model.intercepts_),
        activation=model.activation,
        n_features=model.n_features_in_,
    )


def _transformed_perceptron(model: TransformedTargetRegressor) -> PerceptronMargin:
    regressor = model.regressor_
    scaler = model.transformer_
    if not isinstance(regressor, MLPRegressor) or not isinstance(scaler, StandardScaler):
        raise NotCompilable("TransformedTargetRegressor other than an MLP with a standardised target")
    if getattr(model, "_training_dim", 1) != 1:
        raise NotCompilable("TransformedTargetRegressor with several targets")
    inner = _perceptron(regressor, "identity")
    return PerceptronMargin(
        coefs=inner.coefs,
        intercepts=inner.intercepts,
        activation=inner.activation,
        n_features=inner.n_features,
        target_scale=float(scaler.scale_[0]) if scaler.with_std else None,
        target_mean=float(scaler.mean_[0]) if scaler.with_mean else None,
    )


def _compile_calibration(
    calibrator: Any, estimator: Any
) -> tuple[SigmoidCalibration | IsotonicCalibration, bool]:
    if not isinstance(calibrator, CalibratedClassifierCV):
        raise NotCompilable(f"calibrator {type(calibrator).__name__}")
    calibrated = calibrator.calibrated_classifiers_
    if len(calibrated) != 1 or len(calibrated[0].calibrators) != 1 or len(calibrated[0].classes) != 2:
        raise NotCompilable("calibration other than one binary calibrator (ensemble=False)")
    method = calibrated[0].method
    (fitted,) = calibrated[0].calibrators
    # sklearn's response lookup: decision_function when the estimator has one.
    reads_margin = getattr(estimator, "decision_function", None) is not None
    if method == "sigmoid":
        return SigmoidCalibration(a=fitted.a_, b=fitted.b_), reads_margin
    if method == "isotonic" and isinstance(fitted, IsotonicRegression):
        if fitted.out_of_bounds != "clip" or fitted.X_thresholds_.dtype != np.float64:
            raise NotCompilable("isotonic calibration other than float64 with out_of_bounds='clip'")
        function = fitted.f_
        if isinstance(function, interp1d):
            if function._call.__name__ != "_call_linear_np" or function.bounds_error:
                raise NotCompilable("isotonic interpolation other than scipy's np.interp path")
            x, y = np.asarray(function.x, dtype=float), np.asarray(function.y, dtype=float)
        else:  # a single threshold: sklearn's constant function
            x, y = fitted.X_thresholds_, fitted.y_thresholds_
            if len(y) != 1:
                raise NotCompilable("isotonic calibration with an unknown function")
        return IsotonicCalibration(x=x, y=y, low=fitted.X_min_, high=fitted.X_max_), reads_margin
    raise NotCompilable(f"calibration method {method!r}")


def _relu(values: np.ndarray) -> None:
    np.maximum(values, 0, out=values)


def _tanh(values: np.ndarray) -> None:
    np.tanh(values, out=values)


def _logistic(values: np.ndarray) -> None:
    expit(values, out=values)


def _identity(values: np.ndarray) -> None:
    return None


_HIDDEN_ACTIVATIONS = {"relu": _relu, "tanh": _tanh, "logistic": _logistic, "identity": _identity}

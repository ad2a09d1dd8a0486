"""Build the one sklearn Pipeline a model version is: features, preprocessing, estimator.

    raw records -> FeatureEngineer -> ColumnTransformer(impute/encode/scale)
                -> optional SelectKBest -> estimator

Everything is fitted together and saved together, so prediction applies exactly what
training learned.

It stays one module past 400 lines: the algorithms, their default grids and the
preprocessing options are the one vocabulary `POST /train` accepts, and the estimators
defined here (`EstimateRegressor`, `RunRateRegressor`, `LinearValueRegressor`) are pickled
with model versions, so their module path stays put.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any
from collections.abc import Callable

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.feature_selection import SelectKBest, f_classif, f_regression, mutual_info_classif, mutual_info_regression
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge, TweedieRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from leadml.ml.errors import ConfigError
from leadml.ml.features import FeatureEngineer
from leadml.ml.types import FeatureOptions, FeatureSchema, is_classification

Grid = dict[str, list[Any]] | list[dict[str, list[Any]]]

MISSING_VALUE_STRATEGIES = ("mean", "median", "most_frequent", "constant")
CATEGORICAL_ENCODINGS = ("one_hot", "label")
SCALINGS = ("standard", "minmax", "none")
FEATURE_SELECTIONS = ("none", "k_best", "mutual_info")
PREPROCESSING_OPTIONS = {
    "missing_value_strategy": MISSING_VALUE_STRATEGIES,
    "categorical_encoding": CATEGORICAL_ENCODINGS,
    "scaling": SCALINGS,
    "feature_selection": FEATURE_SELECTIONS,
}
DEFAULT_PREPROCESSING: dict[str, Any] = {
    "missing_value_strategy": "median",
    "categorical_encoding": "one_hot",
    "scaling": "standard",
    "feature_selection": "none",
    "k": 20,
    "fill_value": 0,
}


class EstimateRegressor(RegressorMixin, BaseEstimator):
    """Serve the one input column as the prediction: a model estimate computed upstream.

    For the BTYD spend estimate. Rescaling it by least squares was tried and dropped:
    on CDNOW the fitted factor swung between 0.93 and 1.16 across customer splits (the
    target's heavy tail decides it), costing MAE without a steady gain in R².
    """

    def fit(self, X: Any, y: Any) -> EstimateRegressor:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != 1:
            raise ValueError(f"EstimateRegressor takes exactly one column; got shape {X.shape}")
        self.n_features_in_ = 1
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=float)[:, 0]


# The run-rate divides spend by at least this many days observed: a customer first seen
# yesterday is not extrapolated from one day.
RUN_RATE_MIN_DAYS = 30
RUN_RATE_INPUTS = ("total_spend", "tenure_days")


class RunRateRegressor(RegressorMixin, BaseEstimator):
    """The naive CLV baseline: each customer's spend per day observed, times the horizon.

    Reads two columns, total_spend and tenure_days (days from the first purchase to the
    features' day). Days observed are tenure_days + 1 (both ends included), at least
    `min_days`. Nothing is fitted: every learned model must beat this to be worth serving.
    """

    def __init__(self, horizon_days: float | None = None, min_days: float = RUN_RATE_MIN_DAYS) -> None:
        self.horizon_days = horizon_days
        self.min_days = min_days

    def fit(self, X: Any, y: Any) -> RunRateRegressor:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != 2:
            raise ValueError(f"RunRateRegressor takes total_spend and tenure_days; got shape {X.shape}")
        if not self.horizon_days or self.horizon_days <= 0:
            raise ValueError("RunRateRegressor needs the horizon in days")
        self.n_features_in_ = 2
        return self

    def predict(self, X: Any) -> np.ndarray:
        if not self.horizon_days or self.horizon_days <= 0:
            raise ValueError("RunRateRegressor needs the horizon in days")
        X = np.asarray(X, dtype=float)
        days = np.maximum(X[:, 1] + 1.0, float(self.min_days))
        return np.clip(X[:, 0], 0.0, None) / days * float(self.horizon_days)


class LinearValueRegressor(RegressorMixin, BaseEstimator):
    """A linear model of value whose loss the search chooses: ridge least squares or Tweedie.

    The Tweedie loss (power between 1 and 2: many zeros and a long tail, as spend has)
    with a log link models the mean of heavy-tailed spend without letting a few whales
    drag the coefficients. Only the search sees this wrapper: training serves the fitted
    estimator inside it (`estimator_`, a Ridge or a TweedieRegressor).
    """

    def __init__(self, loss: str = "squared_error", alpha: float = 1.0, power: float = 1.5) -> None:
        self.loss = loss
        self.alpha = alpha
        self.power = power

    def _make(self) -> Any:
        if self.loss == "squared_error":
            return Ridge(alpha=self.alpha)
        if self.loss == "tweedie":
            return TweedieRegressor(power=self.power, alpha=self.alpha, link="log", max_iter=1000)
        raise ValueError(f"loss must be squared_error or tweedie; got {self.loss!r}")

    def fit(self, X: Any, y: Any) -> LinearValueRegressor:
        self.estimator_ = self._make().fit(X, y)
        self.n_features_in_ = self.estimator_.n_features_in_
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.estimator_.predict(X)


def served_estimator(estimator: Any) -> Any:
    """The plain estimator a fitted search candidate serves (unwrapping LinearValueRegressor)."""
    return estimator.estimator_ if isinstance(estimator, LinearValueRegressor) else estimator


# Losses for heavy-tailed, non-negative targets; the search picks by CV whether they beat least squares.
HEAVY_TAIL_PARAMETERS = {"loss": "poisson", "criterion": "poisson"}
HEAVY_TAIL_VALUES = ("poisson", "tweedie")


@dataclass(frozen=True)
class Algorithm:
    """An estimator family with the small grid GridSearchCV explores by default."""

    name: str
    label: str
    make_classifier: Callable[[int], Any] | None
    make_regressor: Callable[[int], Any] | None
    classifier_grid: Grid
    regressor_grid: Grid
    needs_transactions: bool = False  # only for customer tables built from transaction logs

    def applies_to(self, model_type: str) -> bool:
        maker = self.make_classifier if is_classification(model_type) else self.make_regressor
        return maker is not None


def _mlp_regressor(random_state: int) -> TransformedTargetRegressor:
    # CLV targets are in currency units; an MLP learns them far better standardised.
    return TransformedTargetRegressor(
        regressor=MLPRegressor(
            hidden_layer_sizes=(64, 32), early_stopping=True, max_iter=400, random_state=random_state
        ),
        transformer=StandardScaler(),
    )


ALGORITHMS: dict[str, Algorithm] = {
    "random_forest": Algorithm(
        name="random_forest",
        label="Random forest",
        make_classifier=lambda rs: RandomForestClassifier(n_estimators=150, random_state=rs, n_jobs=1),
        make_regressor=lambda rs: RandomForestRegressor(n_estimators=150, random_state=rs, n_jobs=1),
        classifier_grid={"max_depth": [None, 12], "min_samples_leaf": [1, 5]},
        # Lifetime value: least squares or the Poisson criterion (heavy tails), by CV.
        regressor_grid={"max_depth": [None, 12], "min_samples_leaf": [5], "criterion": ["squared_error", "poisson"]},
    ),
    # sklearn's histogram gradient boosting: the same method as GradientBoosting*, orders
    # of magnitude faster on tens of thousands of rows, with native missing-value support.
    "gradient_boosting": Algorithm(
        name="gradient_boosting",
        label="Gradient boosting (histogram)",
        make_classifier=lambda rs: HistGradientBoostingClassifier(max_iter=200, random_state=rs),
        make_regressor=lambda rs: HistGradientBoostingRegressor(max_iter=200, random_state=rs),
        classifier_grid={"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31]},
        regressor_grid={"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31], "loss": ["squared_error", "poisson"]},
    ),
    "logistic_regression": Algorithm(
        name="logistic_regression",
        label="Logistic regression",
        make_classifier=lambda rs: LogisticRegression(max_iter=2000, random_state=rs),
        make_regressor=None,
        classifier_grid={"C": [0.1, 1.0, 10.0]},
        regressor_grid={},
    ),
    # Ridge: least-squares linear regression with a small L2 penalty, so one-hot
    # columns that are collinear do not blow the coefficients up; or, for heavy tails, a
    # Tweedie GLM with a log link (its penalty is per row, hence the smaller alphas).
    "linear_regression": Algorithm(
        name="linear_regression",
        label="Linear regression (ridge, or Tweedie for heavy tails)",
        make_classifier=None,
        make_regressor=lambda rs: LinearValueRegressor(),
        classifier_grid={},
        regressor_grid=[
            {"loss": ["squared_error"], "alpha": [0.1, 1.0, 10.0]},
            {"loss": ["tweedie"], "alpha": [1e-3, 1e-1]},
        ],
    ),
    "neural_network": Algorithm(
        name="neural_network",
        label="Neural network (multi-layer perceptron)",
        # No early stopping for classification: sklearn stops on validation *accuracy*,
        # which on imbalanced leads plateaus at the majority class within a few epochs.
        # Training stops instead once the loss improves by less than `tol` for 10 epochs.
        make_classifier=lambda rs: MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=rs),
        make_regressor=_mlp_regressor,
        classifier_grid={"alpha": [1e-2, 1.0]},
        regressor_grid={"regressor__alpha": [1e-4, 1e-2]},
    ),
    # Buy-till-you-die: the BG/NBD x Gamma-Gamma spend estimate, fitted inside the
    # feature step, served as it is.
    "btyd": Algorithm(
        name="btyd",
        label="BG/NBD + Gamma-Gamma (buy-till-you-die)",
        make_classifier=None,
        make_regressor=lambda rs: EstimateRegressor(),
        classifier_grid={},
        regressor_grid={},
        needs_transactions=True,
    ),
    # The naive baseline every lifetime-value model must beat on held-out customers.
    "run_rate": Algorithm(
        name="run_rate",
        label="Run-rate (calibration spend per day × horizon)",
        make_classifier=None,
        make_regressor=lambda rs: RunRateRegressor(),
        classifier_grid={},
        regressor_grid={},
        needs_transactions=True,
    ),
}
AUTO = "auto"
BTYD_NEEDS_TRANSACTIONS = (
    "algorithm btyd needs a customer table built from a transaction log "
    "(POST /datasets with kind=transactions, then train with its dataset_id)"
)
BTYD_SWITCHED_OFF = "algorithm btyd serves the BTYD features, which feature_engineering.btyd switches off"
ALGORITHM_CHOICES = (*ALGORITHMS, AUTO)


def algorithms_for(model_type: str, *, transactions: bool = False) -> list[str]:
    """Algorithms `auto` tries: those for the model type, BTYD and the run-rate only on transaction tables.

    Those two come first there: the cheapest fits, and the baselines a time budget must not skip.
    """
    names = [
        name
        for name, algorithm in ALGORITHMS.items()
        if algorithm.applies_to(model_type) and (transactions or not algorithm.needs_transactions)
    ]
    return sorted(names, key=lambda name: not ALGORITHMS[name].needs_transactions)


# The original service's option names, read as ours.
PREPROCESSING_ALIASES = {"scaling_method": "scaling"}
PREPROCESSING_KEYS = (*PREPROCESSING_OPTIONS, "k", "fill_value", *PREPROCESSING_ALIASES)


def _canonical_preprocessing(options: dict[str, Any]) -> dict[str, Any]:
    """Rename the original service's options: `scaling_method`, `feature_selection: {method, k}`."""
    canonical: dict[str, Any] = {}
    for key, value in options.items():
        name = PREPROCESSING_ALIASES.get(key, key)
        if name in canonical and canonical[name] != value:
            raise ConfigError(f"preprocessing.{key} and preprocessing.{name} disagree; give one", field=f"preprocessing.{key}")
        canonical[name] = value
    selection = canonical.get("feature_selection")
    if isinstance(selection, dict):
        unknown = sorted(set(selection) - {"method", "k"})
        if unknown:
            raise ConfigError(
                f"unknown preprocessing.feature_selection option {unknown[0]!r}; allowed: method, k",
                field=f"preprocessing.feature_selection.{unknown[0]}",
            )
        canonical["feature_selection"] = selection.get("method", "k_best")
        if "k" in selection:
            if "k" in canonical and canonical["k"] != selection["k"]:
                raise ConfigError("preprocessing.k and feature_selection.k disagree; give one", field="preprocessing.k")
            canonical["k"] = selection["k"]
    return canonical


def _finite(number: float) -> bool:
    """A finite number a float holds (JSON allows integers of any length)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def resolve_preprocessing(options: dict[str, Any] | None) -> dict[str, Any]:
    """Return the full preprocessing config, refusing unknown options and values.

    The original service's spellings are accepted: `scaling_method` for `scaling`, and
    `feature_selection` as an object `{method, k}`.
    """
    if options is not None and not isinstance(options, dict):
        raise ConfigError("preprocessing must be an object", field="preprocessing")
    merged = dict(DEFAULT_PREPROCESSING)
    for key, value in _canonical_preprocessing(options or {}).items():
        if key in PREPROCESSING_OPTIONS:
            allowed = PREPROCESSING_OPTIONS[key]
            if value not in allowed:
                raise ConfigError(
                    f"preprocessing.{key} must be one of {', '.join(allowed)}; got {value!r}",
                    field=f"preprocessing.{key}",
                )
        elif key == "k":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError("preprocessing.k must be a positive integer", field="preprocessing.k")
        elif key == "fill_value":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
                raise ConfigError(
                    "preprocessing.fill_value must be a number (the value missing numbers become)",
                    field="preprocessing.fill_value",
                )
        else:
            allowed_keys = ", ".join(PREPROCESSING_KEYS)
            raise ConfigError(
                f"unknown preprocessing option {key!r}; allowed: {allowed_keys}", field=f"preprocessing.{key}"
            )
        merged[key] = value
    return merged


def make_estimator(model_type: str, algorithm: str, random_state: int) -> Any:
    spec = ALGORITHMS[algorithm]
    maker = spec.make_classifier if is_classification(model_type) else spec.make_regressor
    if maker is None:
        raise ConfigError(
            f"algorithm {algorithm!r} does not apply to {model_type}; use one of "
            f"{', '.join(algorithms_for(model_type))} or auto",
            field="algorithm",
        )
    return maker(random_state)


def default_grid(model_type: str, algorithm: str) -> Grid:
    spec = ALGORITHMS[algorithm]
    grid = spec.classifier_grid if is_classification(model_type) else spec.regressor_grid
    return [dict(part) for part in grid] if isinstance(grid, list) else dict(grid)


def without_heavy_tail(grid: Grid) -> Grid:
    """The grid without Poisson/Tweedie options: for targets with negative values, which they cannot fit."""
    parts = grid if isinstance(grid, list) else [grid]
    kept = []
    for part in parts:
        values = {name: [v for v in options if v not in HEAVY_TAIL_VALUES] for name, options in part.items()}
        if all(values.values()) or not part:
            kept.append(values)
    if isinstance(grid, list):
        return kept or [{}]
    return kept[0] if kept else {}


def build_preprocessor(
    engineer: FeatureEngineer, preprocessing: dict[str, Any], *, rare_category_count: int = 5
) -> ColumnTransformer:
    """Impute, encode and scale the engineered columns as `preprocessing` says.

    One-hot encoding folds categories seen fewer than `rare_category_count` times into
    one "infrequent" column.
    """
    numeric_columns = engineer.numeric_columns_
    categorical_columns = engineer.categorical_columns_
    strategy = preprocessing["missing_value_strategy"]
    numeric_imputer = (
        SimpleImputer(strategy="constant", fill_value=preprocessing.get("fill_value", 0), keep_empty_features=True)
        if strategy == "constant"
        else SimpleImputer(strategy=strategy, keep_empty_features=True)
    )
    numeric_steps: list[tuple[str, Any]] = [("impute", numeric_imputer)]
    scaling = preprocessing["scaling"]
    if scaling == "standard":
        numeric_steps.append(("scale", StandardScaler()))
    elif scaling == "minmax":
        numeric_steps.append(("scale", MinMaxScaler()))

    if preprocessing["categorical_encoding"] == "one_hot":
        # Rare and unseen categories share one "infrequent" column instead of exploding
        # the width or failing at prediction.
        encoder: Any = OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            min_frequency=rare_category_count,
            max_categories=30,
            sparse_output=False,
        )
    else:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2)
    categorical_steps = [
        ("impute", SimpleImputer(strategy="constant", fill_value="missing", keep_empty_features=True)),
        ("encode", encoder),
    ]

    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric_columns:
        transformers.append(("num", Pipeline(numeric_steps), numeric_columns))
    if categorical_columns:
        transformers.append(("cat", Pipeline(categorical_steps), categorical_columns))
    if not transformers:
        raise ConfigError("no usable feature columns remain after dropping identifiers and empty columns")
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def build_pipeline(
    *,
    schema: FeatureSchema,
    model_type: str,
    algorithm: str,
    preprocessing: dict[str, Any],
    feature_options: FeatureOptions | None = None,
    random_state: int = 42,
) -> Pipeline:
    """Return the unfitted pipeline for one algorithm over one feature schema."""
    engineer = FeatureEngineer(schema, feature_options).fit(None)
    if ALGORITHMS[algorithm].needs_transactions:
        if not engineer.from_transactions:
            raise ConfigError(BTYD_NEEDS_TRANSACTIONS, field="algorithm")
        if algorithm == "run_rate":
            return _run_rate_pipeline(schema, feature_options or FeatureOptions(), model_type)
        if not engineer.uses_btyd:
            raise ConfigError(BTYD_SWITCHED_OFF, field="algorithm")
        # The estimate is the only input; customers it cannot score (no history) get 0.
        preprocessor: Any = ColumnTransformer(
            [("num", SimpleImputer(strategy="constant", fill_value=0.0), ["btyd_expected_spend"])],
            remainder="drop",
            verbose_feature_names_out=False,
        )
        return Pipeline(
            [("features", engineer), ("preprocess", preprocessor), ("model", make_estimator(model_type, algorithm, 0))]
        )
    steps: list[tuple[str, Any]] = [
        ("features", engineer),
        ("preprocess", build_preprocessor(engineer, preprocessing)),
    ]
    selection = preprocessing["feature_selection"]
    if selection != "none":
        classification = is_classification(model_type)
        if selection == "k_best":
            score_func: Any = f_classif if classification else f_regression
        else:
            base = mutual_info_classif if classification else mutual_info_regression
            score_func = partial(base, random_state=random_state)
        steps.append(("select", SelectKBest(score_func=score_func, k=preprocessing["k"])))
    steps.append(("model", make_estimator(model_type, algorithm, random_state)))
    return Pipeline(steps)


def _run_rate_pipeline(schema: FeatureSchema, options: FeatureOptions, model_type: str) -> Pipeline:
    """Raw spend and tenure (no log transform, no BTYD fit) into the run-rate; gaps read as 0."""
    plain = FeatureOptions(
        log_transform=False, btyd=False, missing_values=options.missing_values,
        btyd_horizon_days=options.btyd_horizon_days,
    )
    engineer = FeatureEngineer(schema, plain).fit(None)
    preprocessor = ColumnTransformer(
        [("num", Pipeline([("impute", SimpleImputer(strategy="constant", fill_value=0.0))]), list(RUN_RATE_INPUTS))],
        remainder="drop",
        verbose_feature_names_out=False,
    )
    estimator = make_estimator(model_type, "run_rate", 0).set_params(horizon_days=options.btyd_horizon_days)
    return Pipeline([("features", engineer), ("preprocess", preprocessor), ("model", estimator)])


def clamp_selection_k(pipeline: Pipeline, feature_count: int) -> None:
    """Cap SelectKBest's k at the number of columns the preprocessing step produces."""
    if "select" in pipeline.named_steps:
        select = pipeline.named_steps["select"]
        if isinstance(select.k, int) and select.k >= feature_count:
            select.set_params(k="all")


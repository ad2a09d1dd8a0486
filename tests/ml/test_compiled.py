"""Compiled estimators (leadml.ml.compiled) serve what scikit-learn serves, and the parity gate. No database."""
from __future__ import annotations

import copy
import pickle
import warnings
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge, TweedieRegressor
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from demo.data import generate_customers, generate_leads
from leadml.ml import compiled
from leadml.ml.bundle import ModelBundle
from leadml.ml.compiled import (
    BOOSTING_MAX_ROWS,
    FOREST_MAX_ROWS,
    PARITY_TOLERANCE,
    CompiledScorer,
    NotCompilable,
    TreeEnsemble,
    compile_scorer,
)
from leadml.ml.pipeline import EstimateRegressor
from leadml.ml.targets import encode_target
from leadml.ml.train import train_model
from leadml.ml.types import FeatureSchema, TrainingConfig

WIDTH = 7
REFERENCE_TIME = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)
# Estimators that read missing values themselves; the others get imputed inputs only
# (the pipeline imputes before them) and sklearn refuses NaN for them.
READS_MISSING = {"random_forest", "gradient_boosting"}
CLASSIFIERS: dict[str, Callable[[], Any]] = {
    "random_forest": lambda: RandomForestClassifier(n_estimators=25, random_state=0, n_jobs=1),
    "gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
    "logistic_regression": lambda: LogisticRegression(max_iter=500),
    "neural_network": lambda: MLPClassifier(hidden_layer_sizes=(12,), max_iter=150, random_state=0),
}
REGRESSORS: dict[str, Callable[[], Any]] = {
    "random_forest": lambda: RandomForestRegressor(n_estimators=25, min_samples_leaf=3, random_state=0, n_jobs=1),
    "gradient_boosting": lambda: HistGradientBoostingRegressor(max_iter=30, random_state=0),
    "ridge": lambda: Ridge(alpha=1.0),
    "neural_network": lambda: MLPRegressor(hidden_layer_sizes=(12, 6), max_iter=150, random_state=0),
    "neural_network_standardised_target": lambda: TransformedTargetRegressor(
        regressor=MLPRegressor(hidden_layer_sizes=(12,), max_iter=150, random_state=0), transformer=StandardScaler()
    ),
}


def random_matrix(rows: int, seed: int, *, missing: float) -> np.ndarray:
    """Columns on several scales, one of integers (ties at split points), some values missing."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(rows, WIDTH)) * np.array([1.0, 10.0, 0.01, 1e4, 1.0, 1.0, 3.0])
    matrix[:, 5] = np.round(matrix[:, 5] * 3)
    matrix[:, 6] = rng.integers(0, 2, size=rows)  # a one-hot-like column
    matrix[rng.random(matrix.shape) < missing] = np.nan
    return matrix


def targets(matrix: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    filled = np.nan_to_num(matrix)
    rng = np.random.default_rng(seed)
    signal = filled[:, 0] + 0.1 * filled[:, 1] + 50 * filled[:, 2] * filled[:, 6] + 1e-4 * filled[:, 3]
    labels = (signal + rng.normal(size=len(matrix)) > 0).astype(int)
    values = 40 + 30 * signal + 5 * rng.normal(size=len(matrix))  # some below zero: the clip
    return labels, values


def bundle_around(estimator: Any, *, classification: bool, calibrator: Any = None) -> ModelBundle:
    """A bundle whose pipeline is the bare estimator: predict_matrix's sklearn path scores it."""
    return ModelBundle(
        model_type="lead_conversion" if classification else "customer_lifetime_value",
        algorithm="test",
        pipeline=Pipeline([("model", estimator)]),
        schema=FeatureSchema(columns=()),
        trained_at="now",
        calibrator=calibrator,
    )


def fitted(name: str, *, classification: bool, calibration: str | None) -> tuple[Any, Any, np.ndarray]:
    """Return (estimator, calibrator, training matrix) fitted on random data."""
    train = random_matrix(1500, seed=1, missing=0.1 if name in READS_MISSING else 0.0)
    labels, values = targets(train, seed=2)
    make = CLASSIFIERS[name] if classification else REGRESSORS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if calibration is None:
            return make().fit(train, labels if classification else values), None, train
        calibrator = CalibratedClassifierCV(make(), method=calibration, cv=3, ensemble=False).fit(train, labels)
    return calibrator.calibrated_classifiers_[0].estimator, calibrator, train


def scoring_inputs(name: str, train: np.ndarray) -> np.ndarray:
    fresh = random_matrix(400, seed=3, missing=0.2 if name in READS_MISSING else 0.0)
    # Training rows too: their values sit exactly on the split thresholds.
    return np.vstack([fresh, train[:100]])


def assert_same(compiled_output: np.ndarray | None, served: np.ndarray) -> None:
    assert compiled_output is not None
    assert compiled_output.shape == served.shape and compiled_output.dtype == np.float64
    assert np.array_equal(np.isnan(compiled_output), np.isnan(served))
    difference = np.abs(np.nan_to_num(compiled_output) - np.nan_to_num(served))
    assert difference.max() <= PARITY_TOLERANCE, difference.max()


# --- parity on random data -----------------------------------------------------------


@pytest.mark.parametrize("calibration", [None, "sigmoid", "isotonic"])
@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_compiled_classifier_serves_what_sklearn_serves(name: str, calibration: str | None) -> None:
    estimator, calibrator, train = fitted(name, classification=True, calibration=calibration)
    bundle = bundle_around(estimator, classification=True, calibrator=calibrator)
    scorer = compile_scorer(estimator=estimator, calibrator=calibrator, classification=True)
    inputs = scoring_inputs(name, train)
    served = bundle.predict_matrix_sklearn(inputs)
    assert len(np.unique(served)) > 10  # the rows are told apart, not all in one leaf
    assert_same(scorer.predict(inputs), served)
    # Alone or in company: a record's output does not depend on the others in the call.
    for row in (0, 1, 123, len(inputs) - 1):
        assert_same(scorer.predict(inputs[row : row + 1]), bundle.predict_matrix_sklearn(inputs[row : row + 1]))
    # The split used by exact reasons: served(margin) is predict.
    margin = scorer.margin(inputs)
    assert margin is not None
    assert np.array_equal(scorer.served(margin), scorer.predict(inputs), equal_nan=True)


@pytest.mark.parametrize("name", list(REGRESSORS))
def test_compiled_regressor_serves_what_sklearn_serves_clipped_at_zero(name: str) -> None:
    estimator, _, train = fitted(name, classification=False, calibration=None)
    bundle = bundle_around(estimator, classification=False)
    scorer = compile_scorer(estimator=estimator, calibrator=None, classification=False)
    inputs = scoring_inputs(name, train)
    served = bundle.predict_matrix_sklearn(inputs)
    assert (served == 0).any() and (served > 0).sum() > 50  # the clip is exercised
    assert_same(scorer.predict(inputs), served)
    for row in (0, 7, len(inputs) - 1):
        assert_same(scorer.predict(inputs[row : row + 1]), bundle.predict_matrix_sklearn(inputs[row : row + 1]))


@pytest.mark.parametrize(
    "make",
    [
        lambda: HistGradientBoostingRegressor(loss="poisson", max_iter=30, random_state=0),
        lambda: TweedieRegressor(power=1.5, alpha=0.1, link="log", max_iter=500),
    ],
    ids=["poisson_boosting", "tweedie_glm"],
)
def test_compiled_log_link_regressors_serve_what_sklearn_serves(make: Callable[[], Any]) -> None:
    """The heavy-tailed lifetime-value candidates: the value is exp(margin)."""
    train = random_matrix(1500, seed=1, missing=0.0)
    _, values = targets(train, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator = make().fit(train, np.clip(values, 0.0, None))
    bundle = bundle_around(estimator, classification=False)
    scorer = compile_scorer(estimator=estimator, calibrator=None, classification=False)
    assert scorer.log_link
    inputs = scoring_inputs("ridge", train)
    assert_same(scorer.predict(inputs), bundle.predict_matrix_sklearn(inputs))
    assert_same(scorer.predict(inputs[:1]), bundle.predict_matrix_sklearn(inputs[:1]))


def test_compiled_estimate_regressor_serves_its_column() -> None:
    estimate = np.array([[12.5], [-3.0], [0.0], [np.nan], [1e9]])
    estimator = EstimateRegressor().fit(estimate, np.zeros(len(estimate)))
    bundle = bundle_around(estimator, classification=False)
    scorer = compile_scorer(estimator=estimator, calibrator=None, classification=False)
    assert_same(scorer.predict(estimate), bundle.predict_matrix_sklearn(estimate))


@pytest.mark.parametrize(
    ("name", "kind"),
    [("random_forest", RandomForestClassifier), ("gradient_boosting", HistGradientBoostingClassifier)],
)
def test_trees_are_flattened_once_and_compare_like_sklearn(name: str, kind: type) -> None:
    estimator, _, train = fitted(name, classification=True, calibration=None)
    scorer = compile_scorer(estimator=estimator, calibrator=None, classification=True)
    ensemble = scorer.model
    assert isinstance(ensemble, TreeEnsemble) and isinstance(estimator, kind)
    trees = estimator.n_estimators if name == "random_forest" else estimator.n_iter_
    assert ensemble.n_trees == trees
    # Forests compare float32 values (sklearn casts X), boosting float64 ones.
    assert ensemble.float32_inputs == (name == "random_forest")
    # A value between a float32 threshold's neighbours: only the float32 cast keeps sklearn's side.
    inputs = scoring_inputs(name, train)
    nudged = inputs.copy()
    nudged[:, 0] = np.nextafter(inputs[:, 0], np.inf)
    bundle = bundle_around(estimator, classification=True)
    assert_same(scorer.predict(nudged), bundle.predict_matrix_sklearn(nudged))


# --- inputs sklearn refuses are left to sklearn ------------------------------------------


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # sklearn's own cast
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("random_forest", 1e39),  # beyond float32: sklearn refuses it as infinite
        ("random_forest", np.inf),
        ("logistic_regression", np.nan),
        ("neural_network", np.inf),
    ],
)
def test_inputs_sklearn_refuses_are_not_scored_but_refused_by_sklearn(name: str, value: float) -> None:
    estimator, _, train = fitted(name, classification=True, calibration=None)
    scorer = compile_scorer(estimator=estimator, calibrator=None, classification=True)
    inputs = train[:3].copy()
    inputs[1, 2] = value
    assert scorer.predict(inputs) is None
    bundle = bundle_around(estimator, classification=True)
    bundle.__dict__["_cached_scorer"] = scorer  # as if the version had passed its gate
    with pytest.raises(ValueError):
        bundle.predict_matrix(inputs)
    assert scorer.predict(inputs[:1]) is not None


def test_boosting_reads_infinities_and_missing_values_as_sklearn_does() -> None:
    estimator, _, train = fitted("gradient_boosting", classification=True, calibration=None)
    scorer = compile_scorer(estimator=estimator, calibrator=None, classification=True)
    inputs = train[:6].copy()
    inputs[0, :] = np.inf
    inputs[1, :] = -np.inf
    inputs[2, :] = np.nan
    inputs[3, 0] = 1e300
    assert_same(scorer.predict(inputs), bundle_around(estimator, classification=True).predict_matrix_sklearn(inputs))


def test_wrong_width_or_dtype_is_left_to_sklearn() -> None:
    estimator, _, train = fitted("gradient_boosting", classification=True, calibration=None)
    scorer = compile_scorer(estimator=estimator, calibrator=None, classification=True)
    assert scorer.predict(train[:3, :-1]) is None
    assert scorer.predict(train[:3].astype(np.float32)) is None


def test_unknown_estimators_are_not_compiled() -> None:
    train = random_matrix(200, seed=1, missing=0.0)
    labels, _ = targets(train, seed=2)
    with pytest.raises(NotCompilable, match="KNeighborsClassifier"):
        compile_scorer(estimator=KNeighborsClassifier().fit(train, labels), calibrator=None, classification=True)
    three_classes = np.arange(len(train)) % 3
    with pytest.raises(NotCompilable, match="binary"):
        compile_scorer(
            estimator=HistGradientBoostingClassifier(max_iter=5).fit(train, three_classes),
            calibrator=None,
            classification=True,
        )


# --- the parity gate at training -----------------------------------------------------


@pytest.fixture(scope="module")
def lead_data() -> tuple[pd.DataFrame, pd.Series]:
    frame = generate_leads(500, seed=5)
    return frame, encode_target(frame.pop("status"), model_type="lead_conversion", positive_values=["customer", "won"])


@pytest.fixture(scope="module")
def customer_data() -> tuple[pd.DataFrame, pd.Series]:
    frame = generate_customers(400, seed=5)
    return frame, frame.pop("lifetime_value")


SMALL_GRIDS: dict[str, dict[str, list[Any]]] = {
    "random_forest": {"n_estimators": [20], "max_depth": [None], "min_samples_leaf": [1]},
    "gradient_boosting": {"max_iter": [30]},
    "logistic_regression": {"C": [1.0]},
    "linear_regression": {"alpha": [1.0]},
    "neural_network": {"max_iter": [60]},
}


def trained(model_type: str, data: tuple[pd.DataFrame, pd.Series], algorithm: str) -> Any:
    frame, labels = data
    grid = SMALL_GRIDS[algorithm]
    if algorithm == "neural_network" and model_type == "customer_lifetime_value":
        grid = {"regressor__max_iter": [60]}
    result = train_model(
        frame, labels, model_type=model_type, algorithm=algorithm, config=TrainingConfig(cv_folds=2, param_grid=grid)
    )
    # Ages in days read the clock; a fixed one lets two scorings of a record agree.
    result.bundle.pipeline.named_steps["features"].reference_time = REFERENCE_TIME
    return result


@pytest.mark.parametrize(
    ("model_type", "algorithm"),
    [
        ("lead_conversion", "random_forest"),
        ("lead_conversion", "gradient_boosting"),
        ("lead_conversion", "logistic_regression"),
        ("lead_conversion", "neural_network"),
        ("customer_lifetime_value", "random_forest"),
        ("customer_lifetime_value", "gradient_boosting"),
        ("customer_lifetime_value", "linear_regression"),
        ("customer_lifetime_value", "neural_network"),
    ],
)
def test_training_gate_passes_and_the_version_serves_compiled(
    model_type: str,
    algorithm: str,
    lead_data: tuple[pd.DataFrame, pd.Series],
    customer_data: tuple[pd.DataFrame, pd.Series],
) -> None:
    result = trained(model_type, lead_data if model_type == "lead_conversion" else customer_data, algorithm)
    serving = result.report["serving"]
    assert serving["compiled"] is True, serving
    assert serving["rows"] == result.report["test_rows"]
    assert 0.0 <= serving["max_abs_difference"] <= PARITY_TOLERANCE
    assert "reproduces the pipeline" in serving["reason"]
    bundle = result.bundle
    assert bundle.serving is not None and bundle.serving.compiled
    scorer = bundle.compiled_scorer()
    assert isinstance(scorer, CompiledScorer)
    holdout = result.holdout[0]
    matrix = np.asarray(bundle.pipeline[:-1].transform(holdout), dtype=float)
    assert np.allclose(bundle.predict_matrix(matrix[:50]), bundle.predict(holdout.iloc[:50]), rtol=0, atol=1e-9)


def test_gate_refuses_a_scorer_that_disagrees_and_the_version_serves_through_sklearn(
    lead_data: tuple[pd.DataFrame, pd.Series], monkeypatch: pytest.MonkeyPatch
) -> None:
    honest = CompiledScorer.predict

    def off_by_a_little(self: CompiledScorer, matrix: np.ndarray) -> np.ndarray | None:
        served = honest(self, matrix)
        return None if served is None else served + 1e-6

    monkeypatch.setattr(CompiledScorer, "predict", off_by_a_little)
    result = trained("lead_conversion", lead_data, "gradient_boosting")
    serving = result.report["serving"]
    assert serving["compiled"] is False
    assert serving["max_abs_difference"] == pytest.approx(1e-6, rel=1e-3)
    assert "differs from the pipeline" in serving["reason"] and "scikit-learn" in serving["reason"]
    bundle = result.bundle
    assert bundle.compiled_scorer() is None
    calls: list[int] = []
    monkeypatch.setattr(CompiledScorer, "predict", lambda self, matrix: calls.append(len(matrix)))
    matrix = np.asarray(bundle.pipeline[:-1].transform(result.holdout[0].iloc[:5]), dtype=float)
    assert np.array_equal(bundle.predict_matrix(matrix), bundle.predict_matrix_sklearn(matrix))
    assert calls == []


def test_gate_reports_an_estimator_it_does_not_know(lead_data: tuple[pd.DataFrame, pd.Series]) -> None:
    frame, labels = lead_data
    bundle = bundle_around(KNeighborsClassifier(), classification=True)
    check = bundle.check_compiled(frame)
    assert check.compiled is False and check.rows == 0
    assert "KNeighborsClassifier" in check.reason and "scikit-learn" in check.reason


def test_predict_matrix_uses_the_compiled_scorer_up_to_its_bound(
    lead_data: tuple[pd.DataFrame, pd.Series], monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = trained("lead_conversion", lead_data, "gradient_boosting").bundle
    scorer = bundle.compiled_scorer()
    assert scorer is not None and scorer.max_rows == BOOSTING_MAX_ROWS
    assert compile_scorer(
        estimator=RandomForestClassifier(n_estimators=2).fit(np.eye(4), [0, 1, 0, 1]), calibrator=None, classification=True
    ).max_rows == FOREST_MAX_ROWS
    frame = pd.DataFrame(bundle.reference_sample)
    matrix = np.asarray(bundle.pipeline[:-1].transform(frame.head(BOOSTING_MAX_ROWS + 1)), dtype=float)
    honest = CompiledScorer.predict
    calls: list[int] = []

    def counted(self: CompiledScorer, inputs: np.ndarray) -> np.ndarray | None:
        calls.append(len(inputs))
        return honest(self, inputs)

    monkeypatch.setattr(CompiledScorer, "predict", counted)
    small = bundle.predict_matrix(matrix[:-1])
    large = bundle.predict_matrix(matrix)
    assert calls == [BOOSTING_MAX_ROWS]
    assert np.allclose(small, large[:-1], rtol=0, atol=1e-9)


# --- versions saved before the gate, and what is never saved ---------------------------


@pytest.fixture(scope="module")
def forest_result(lead_data: tuple[pd.DataFrame, pd.Series]) -> Any:
    return trained("lead_conversion", lead_data, "random_forest")


def as_if_pickled_before_the_gate(bundle: ModelBundle, **changes: Any) -> ModelBundle:
    old = copy.copy(replace(bundle, **changes))
    del old.__dict__["serving"]  # the attribute did not exist
    restored = pickle.loads(pickle.dumps(old))
    assert "serving" not in restored.__dict__ and restored.serving is None
    return restored


def test_a_version_pickled_before_the_gate_is_verified_on_its_reference_sample(forest_result: Any) -> None:
    bundle = as_if_pickled_before_the_gate(forest_result.bundle)
    holdout = forest_result.holdout[0].iloc[:20]
    prepared = bundle.prepare(holdout.to_dict("records"))
    served = bundle.predict_prepared(prepared)
    assert np.allclose(served, bundle.predict(prepared.frame), rtol=0, atol=1e-9)
    check = bundle.serving_check()
    assert check is not None and check.compiled, check
    assert check.rows == min(len(bundle.reference_sample), compiled.LAZY_CHECK_ROWS)
    assert isinstance(bundle.compiled_scorer(), CompiledScorer)
    assert bundle.serving is None  # the persisted fields are not rewritten


def test_a_version_pickled_before_the_gate_without_a_reference_sample_serves_through_sklearn(
    forest_result: Any,
) -> None:
    bundle = as_if_pickled_before_the_gate(forest_result.bundle, reference_sample=None)
    holdout = forest_result.holdout[0].iloc[:20]
    prepared = bundle.prepare(holdout.to_dict("records"))
    assert np.allclose(bundle.predict_prepared(prepared), bundle.predict(prepared.frame), rtol=0, atol=1e-12)
    assert bundle.compiled_scorer() is None
    check = bundle.serving_check()
    assert check is not None and not check.compiled and "no reference sample" in check.reason


def test_a_version_checked_under_another_sklearn_is_checked_again(forest_result: Any) -> None:
    assert forest_result.bundle.serving is not None
    bundle = replace(forest_result.bundle, serving=replace(forest_result.bundle.serving, sklearn_version="0.1"))
    assert isinstance(bundle.compiled_scorer(), CompiledScorer)
    check = bundle.serving_check()
    assert check is not None and check.compiled and check.sklearn_version != "0.1"


def test_compiled_scorers_are_never_pickled(forest_result: Any) -> None:
    bundle = copy.copy(forest_result.bundle)
    matrix = np.asarray(bundle.pipeline[:-1].transform(forest_result.holdout[0].iloc[:3]), dtype=float)
    bundle.predict_matrix(matrix)
    assert "_cached_scorer" in bundle.__dict__
    payload = pickle.dumps(bundle)
    assert b"CompiledScorer" not in payload and b"TreeEnsemble" not in payload
    restored = pickle.loads(payload)
    assert not any(key.startswith("_cached") for key in restored.__dict__)
    assert restored.serving == bundle.serving
    assert np.array_equal(restored.predict_matrix(matrix), bundle.predict_matrix(matrix))

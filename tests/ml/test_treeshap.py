"""Exact tree Shapley values (leadml.ml.treeshap) and the `tree_exact` reasons built on them. No database."""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

from demo.data import generate_customers, generate_leads
from leadml.ml import native, treeshap
from leadml.ml.bundle import ModelBundle
from leadml.ml.compiled import CompiledScorer, TreeEnsemble, compile_scorer
from leadml.ml.reasons import Explainer
from leadml.ml.targets import encode_target
from leadml.ml.train import train_model
from leadml.ml.treeshap import MAX_PLAYERS, TreeGame, TreeShapley, tree_shapley
from leadml.ml.types import TrainingConfig

REFERENCE_TIME = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)
# Columns 0..7 in five players: two single numbers, a one-hot block of three columns
# (exactly one set), a pair, and a number that is often missing.
COLUMN_PLAYERS = np.array([0, 1, 2, 2, 2, 3, 3, 4])
PLAYERS = 5


def grouped_matrix(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(rows, 8))
    matrix[:, 1] = np.round(matrix[:, 1] * 2)  # ties on split points
    category = rng.integers(0, 3, size=rows)
    matrix[:, 2:5] = np.eye(3)[category]
    matrix[rng.random(rows) < 0.15, 0] = np.nan
    matrix[rng.random(rows) < 0.4, 7] = np.nan
    return matrix


def grouped_targets(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    filled = np.nan_to_num(matrix, nan=-1.0)
    signal = filled[:, 0] + 0.5 * filled[:, 1] * filled[:, 3] + filled[:, 5] - filled[:, 6] * filled[:, 4] + filled[:, 7]
    return (signal > 0.2).astype(int), 30 + 10 * signal


MODELS: dict[str, tuple[Callable[[], Any], bool]] = {
    "forest_classifier": (lambda: RandomForestClassifier(n_estimators=15, random_state=0), True),
    "forest_regressor": (lambda: RandomForestRegressor(n_estimators=15, max_depth=9, random_state=0), False),
    "boosting_classifier": (lambda: HistGradientBoostingClassifier(max_iter=25, random_state=0), True),
    "boosting_regressor": (lambda: HistGradientBoostingRegressor(max_iter=25, random_state=0), False),
}


def sklearn_margin(model: Any, classification: bool) -> Callable[[np.ndarray], np.ndarray]:
    """The game's worth as sklearn computes it: log-odds or value for boosting, averaged trees for forests."""
    if isinstance(model, RandomForestClassifier):
        return lambda matrix: model.predict_proba(matrix)[:, 1]
    if classification:
        return model.decision_function
    return model.predict


def brute_force(
    margin: Callable[[np.ndarray], np.ndarray], record: np.ndarray, reference: np.ndarray, players: np.ndarray, count: int
) -> np.ndarray:
    """Shapley values from the margins of all 2^n hybrids of record and reference."""
    subsets = list(itertools.product((False, True), repeat=count))
    hybrids = np.array([np.where(np.array(subset)[players], record, reference) for subset in subsets])
    worth = dict(zip(subsets, margin(hybrids)))
    values = np.zeros(count)
    for subset in subsets:
        size = sum(subset)
        for player in range(count):
            if not subset[player]:
                weight = math.factorial(size) * math.factorial(count - size - 1) / math.factorial(count)
                joined = tuple(True if index == player else taken for index, taken in enumerate(subset))
                values[player] += weight * (worth[joined] - worth[subset])
    return values


@pytest.fixture(autouse=True, params=["native", "numpy"])
def tree_walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on both walks: the C one (leadml.ml.native) and the numpy one it replaces."""
    if request.param == "native":
        assert native.available(), "the C tree walk did not build: see leadml.ml.native"
    else:
        monkeypatch.setattr(native, "_library", lambda: None)
    return str(request.param)


@pytest.fixture(scope="module", params=list(MODELS), ids=list(MODELS))
def fitted(request: pytest.FixtureRequest) -> tuple[Any, bool, TreeEnsemble]:
    make, classification = MODELS[request.param]
    train = grouped_matrix(1200, seed=1)
    labels, values = grouped_targets(train)
    model = make().fit(train, labels if classification else values)
    scorer = compile_scorer(estimator=model, calibrator=None, classification=classification)
    assert isinstance(scorer.model, TreeEnsemble)
    return model, classification, scorer.model


def test_exact_values_are_the_brute_force_shapley_values_of_the_margin_game(
    fitted: tuple[Any, bool, TreeEnsemble],
) -> None:
    model, classification, ensemble = fitted
    records = grouped_matrix(12, seed=7)
    reference = grouped_matrix(1, seed=8)[0]
    reference[7] = np.nan  # the reference may lack values too
    records[0] = reference
    records[1, 2:5] = reference[2:5]  # same category as the reference
    records[2, 0] = np.nan
    margin = sklearn_margin(model, classification)
    result = tree_shapley(ensemble, records, reference, COLUMN_PLAYERS, PLAYERS)
    assert isinstance(result, TreeShapley)
    assert result.values.shape == (len(records), PLAYERS)
    for record, values in zip(records, result.values):
        expected = brute_force(margin, record, reference, COLUMN_PLAYERS, PLAYERS)
        assert np.allclose(values, expected, rtol=0, atol=1e-12), (values, expected)
    # The walk finds the model's own margins, and the values add up to their difference.
    record_margins, (reference_margin,) = margin(records), margin(reference[None, :])
    assert np.allclose(result.record_margins, record_margins, rtol=0, atol=1e-12)
    assert np.allclose(result.reference_margins, reference_margin, rtol=0, atol=1e-12)
    assert np.allclose(result.values.sum(axis=1), record_margins - reference_margin, rtol=0, atol=1e-12)
    assert np.abs(result.values[3:]).max() > 1e-3  # a test on a model that does something


def test_players_equal_to_the_reference_get_exactly_zero(fitted: tuple[Any, bool, TreeEnsemble]) -> None:
    _, _, ensemble = fitted
    reference = grouped_matrix(1, seed=8)[0]
    records = grouped_matrix(40, seed=9)
    records[:, 2:5] = reference[2:5]  # player 2, the one-hot block
    records[:, 0] = reference[0]  # player 0
    records[::2, 7] = reference[7]  # player 4, half of the time
    result = tree_shapley(ensemble, records, reference, COLUMN_PLAYERS, PLAYERS)
    assert result is not None
    assert np.all(result.values[:, 0] == 0.0) and np.all(result.values[:, 2] == 0.0)
    assert np.all(result.values[::2, 4] == 0.0)
    assert np.all(tree_shapley(ensemble, reference[None, :], reference, COLUMN_PLAYERS, PLAYERS).values == 0.0)


def test_records_walked_together_or_apart_get_the_same_values(
    fitted: tuple[Any, bool, TreeEnsemble], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, ensemble = fitted
    records = grouped_matrix(9, seed=11)
    reference = grouped_matrix(1, seed=12)[0]
    together = tree_shapley(ensemble, records, reference, COLUMN_PLAYERS, PLAYERS)
    monkeypatch.setattr(treeshap, "CHUNK_RECORDS", 2)
    chunked = tree_shapley(ensemble, records, reference, COLUMN_PLAYERS, PLAYERS)
    alone = [tree_shapley(ensemble, record[None, :], reference, COLUMN_PLAYERS, PLAYERS) for record in records]
    assert together is not None and chunked is not None
    assert np.allclose(together.values, chunked.values, rtol=0, atol=1e-15)
    assert np.allclose(together.values, np.vstack([one.values for one in alone if one is not None]), rtol=0, atol=1e-15)


def test_inputs_the_model_refuses_and_too_many_players_are_not_explained() -> None:
    train = grouped_matrix(300, seed=1)
    labels, _ = grouped_targets(train)
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(train, labels)
    ensemble = compile_scorer(estimator=forest, calibrator=None, classification=True).model
    huge = train[:2].copy()
    huge[0, 5] = 1e39  # beyond float32: sklearn refuses it
    assert tree_shapley(ensemble, huge, train[3], COLUMN_PLAYERS, PLAYERS) is None
    many = np.arange(8) * 9
    assert tree_shapley(ensemble, train[:2], train[3], many, MAX_PLAYERS + 1) is None


# --- tree_exact reasons on trained versions ------------------------------------------


@pytest.fixture(scope="module")
def lead_data() -> tuple[pd.DataFrame, pd.Series]:
    frame = generate_leads(900, seed=5)
    return frame, encode_target(frame.pop("status"), model_type="lead_conversion", positive_values=["customer", "won"])


@pytest.fixture(scope="module")
def customer_data() -> tuple[pd.DataFrame, pd.Series]:
    frame = generate_customers(700, seed=5)
    return frame, frame.pop("lifetime_value")


VERSIONS = {
    "lead_forest": ("lead_conversion", "random_forest", {"n_estimators": [30], "min_samples_leaf": [3]}),
    "lead_boosting": ("lead_conversion", "gradient_boosting", {"max_iter": [60]}),
    "clv_forest": ("customer_lifetime_value", "random_forest", {"n_estimators": [30], "min_samples_leaf": [3]}),
    "clv_boosting": ("customer_lifetime_value", "gradient_boosting", {"max_iter": [60]}),
}


@pytest.fixture(scope="module")
def versions(
    lead_data: tuple[pd.DataFrame, pd.Series], customer_data: tuple[pd.DataFrame, pd.Series]
) -> Callable[[str], ModelBundle]:
    trained: dict[str, ModelBundle] = {}

    def get(name: str) -> ModelBundle:
        if name not in trained:
            model_type, algorithm, grid = VERSIONS[name]
            frame, labels = lead_data if model_type == "lead_conversion" else customer_data
            bundle = train_model(
                frame, labels, model_type=model_type, algorithm=algorithm,
                config=TrainingConfig(cv_folds=2, param_grid=grid),
            ).bundle
            bundle.pipeline.named_steps["features"].reference_time = REFERENCE_TIME
            trained[name] = bundle
        return trained[name]

    return get


def fresh_records(bundle: ModelBundle, count: int) -> list[dict[str, Any]]:
    frame = generate_leads(count, seed=21) if bundle.classification else generate_customers(count, seed=21)
    frame = frame.drop(columns=["status" if bundle.classification else "lifetime_value"])
    return [{key: value for key, value in row.items() if not pd.isna(value)} for row in frame.to_dict("records")]


def scale(bundle: ModelBundle) -> float:
    return 100.0 if bundle.classification else 1.0


def pipeline_margin(bundle: ModelBundle, records: list[dict[str, Any]]) -> np.ndarray:
    """The tree game's worth from sklearn: raw score for boosting, averaged trees for forests."""
    frame = bundle.prepare(records).frame
    if not bundle.classification:
        return bundle.pipeline.predict(frame)
    if bundle.algorithm == "gradient_boosting":
        return bundle.pipeline.decision_function(frame)
    return bundle.pipeline.predict_proba(frame)[:, 1]


@pytest.mark.parametrize("name", list(VERSIONS))
def test_tree_reasons_add_up_to_the_served_output(versions: Callable[[str], ModelBundle], name: str) -> None:
    bundle = versions(name)
    assert bundle.compiled_scorer() is not None  # the gate passed: tree_exact reads these trees
    records = fresh_records(bundle, 40)
    inputs = bundle.model_input(bundle.prepare(records))
    served, explanations = Explainer(bundle).score_and_explain(inputs)
    assert np.allclose(served, bundle.predict(bundle.prepare(records).frame), rtol=0, atol=1e-9)
    baseline = bundle.predict(bundle.prepare([bundle.baseline_record or {}]).frame)[0] * scale(bundle)
    for value, explanation in zip(served, explanations):
        assert explanation.method == "tree_exact"
        assert explanation.baseline == pytest.approx(baseline, abs=1e-9)
        assert explanation.log_odds is None
        total = explanation.baseline + sum(explanation.contributions.values())
        assert total == pytest.approx(value * scale(bundle), abs=1e-9)
    assert len({round(float(value), 9) for value in served}) > 20


@pytest.mark.parametrize("name", list(VERSIONS))
def test_tree_reasons_are_the_margin_games_shapley_values_of_mixed_raw_records_in_served_units(
    versions: Callable[[str], ModelBundle], name: str
) -> None:
    bundle = versions(name)
    assert bundle.baseline_record is not None
    record = fresh_records(bundle, 3)[1]
    changed = [field for field in bundle.schema.names if record.get(field) != bundle.baseline_record.get(field)][:6]
    record = {**bundle.baseline_record, **{field: record.get(field) for field in changed}}
    # The margin game over the changed fields, mixing raw records (the reasons' players).
    subsets = [frozenset(c) for size in range(len(changed) + 1) for c in itertools.combinations(changed, size)]
    mixed = [{**bundle.baseline_record, **{field: record.get(field) for field in subset}} for subset in subsets]
    worth = dict(zip(subsets, pipeline_margin(bundle, mixed)))
    margin_values = {}
    for field in changed:
        others = [other for other in changed if other != field]
        total = 0.0
        for size in range(len(others) + 1):
            weight = math.factorial(size) * math.factorial(len(changed) - size - 1) / math.factorial(len(changed))
            for subset in itertools.combinations(others, size):
                total += weight * (worth[frozenset(subset) | {field}] - worth[frozenset(subset)])
        margin_values[field] = total
    served = bundle.predict(bundle.prepare([record, bundle.baseline_record]).frame) * scale(bundle)
    factor = (served[0] - served[1]) / (worth[frozenset(changed)] - worth[frozenset()])
    _, (explanation,) = Explainer(bundle).score_and_explain(bundle.model_input(bundle.prepare([record])))
    assert explanation.method == "tree_exact"
    assert set(explanation.contributions) == set(changed)
    for field, value in margin_values.items():
        assert explanation.contributions[field] == pytest.approx(value * factor, abs=1e-9), field
    # Same signs as the margin's: calibration and the clip at zero are increasing.
    for field, value in margin_values.items():
        if abs(value * factor) > 1e-9:
            assert np.sign(explanation.contributions[field]) == np.sign(value), field
    assert any(abs(value) > 1e-3 for value in margin_values.values())


@pytest.mark.parametrize("name", ["lead_forest", "clv_boosting"])
def test_fields_equal_to_the_baseline_get_no_tree_reason(versions: Callable[[str], ModelBundle], name: str) -> None:
    bundle = versions(name)
    assert bundle.baseline_record is not None
    record = fresh_records(bundle, 2)[0]
    changed = [field for field in bundle.schema.names if record.get(field) != bundle.baseline_record.get(field)][:3]
    records = [
        {**bundle.baseline_record, **{field: record.get(field) for field in changed}},
        dict(bundle.baseline_record),
    ]
    served, (partial, unchanged) = Explainer(bundle).score_and_explain(bundle.model_input(bundle.prepare(records)))
    assert partial.method == unchanged.method == "tree_exact"
    assert set(partial.contributions) == set(changed)
    assert unchanged.contributions == {}
    assert unchanged.baseline == pytest.approx(served[1] * scale(bundle), abs=1e-12)


def test_a_version_serving_through_sklearn_is_explained_by_scoring_mixtures(
    versions: Callable[[str], ModelBundle],
) -> None:
    bundle = versions("lead_boosting")
    bundle.__dict__["_cached_scorer"] = None  # as if its parity gate had failed
    try:
        _, (explanation,) = Explainer(bundle).score_and_explain(bundle.model_input(bundle.prepare(fresh_records(bundle, 1))))
    finally:
        del bundle.__dict__["_cached_scorer"]
    assert explanation.method in ("shapley_exact", "shapley_sampled")


def test_a_walk_that_disagrees_with_the_model_falls_back_to_scoring_mixtures(
    versions: Callable[[str], ModelBundle], monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = versions("clv_forest")
    inputs = bundle.model_input(bundle.prepare(fresh_records(bundle, 2)))
    honest = TreeGame.shapley

    def off(self: TreeGame, records: np.ndarray) -> TreeShapley | None:
        result = honest(self, records)
        assert result is not None
        return TreeShapley(result.values, result.record_margins + 1.0, result.reference_margins)

    monkeypatch.setattr(TreeGame, "shapley", off)
    served, explanations = Explainer(bundle).score_and_explain(inputs)
    assert all(explanation.method != "tree_exact" for explanation in explanations)
    assert np.allclose(served, bundle.predict_matrix(inputs), rtol=0, atol=1e-9)


def test_contributions_that_cancel_out_are_scaled_by_the_local_slope(
    versions: Callable[[str], ModelBundle], monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = versions("lead_boosting")
    explainer = Explainer(bundle)
    scorer = explainer._trees
    assert isinstance(scorer, CompiledScorer)
    base_input = explainer._baseline_input()
    base_margin = scorer.margin(base_input[None, :])
    assert base_margin is not None
    honest = TreeGame.shapley

    def cancelling(self: TreeGame, records: np.ndarray) -> TreeShapley | None:
        result = honest(self, records)
        assert result is not None
        values = np.zeros_like(result.values)
        values[:, :2] = [0.3, -0.3]
        return TreeShapley(values, result.reference_margins, result.reference_margins)

    monkeypatch.setattr(TreeGame, "shapley", cancelling)
    # A record scored like the baseline: its two differing fields move it by +0.3 and -0.3.
    record = base_input.copy()
    first, second = explainer.players[0].columns[0], explainer.players[1].columns[0]
    record[first] += 1.0
    record[second] += 1.0
    monkeypatch.setattr(TreeEnsemble, "margin", lambda self, matrix: np.full(len(matrix), base_margin[0]))
    _, (explanation,) = explainer.score_and_explain(record[None, :])
    slope = scorer.slope(float(base_margin[0])) * 100
    names = [explainer.players[0].name, explainer.players[1].name]
    assert explanation.method == "tree_exact"
    assert explanation.contributions[names[0]] == pytest.approx(0.3 * slope)
    assert explanation.contributions[names[1]] == pytest.approx(-0.3 * slope)
    assert slope > 0


def test_the_game_follows_the_baseline_as_dates_age_it(versions: Callable[[str], ModelBundle]) -> None:
    bundle = versions("lead_boosting")
    explainer = Explainer(bundle)
    inputs = bundle.model_input(bundle.prepare(fresh_records(bundle, 3)))
    _, first = explainer.score_and_explain(inputs)
    engineer = bundle.pipeline.named_steps["features"]
    engineer.reference_time = REFERENCE_TIME.replace(year=2027)  # a year later, same process
    try:
        aged = bundle.model_input(bundle.prepare(fresh_records(bundle, 3)))
        served, later = explainer.score_and_explain(aged)
    finally:
        engineer.reference_time = REFERENCE_TIME
    assert [explanation.method for explanation in first + later] == ["tree_exact"] * 6
    for value, explanation in zip(served, later):
        assert explanation.baseline + sum(explanation.contributions.values()) == pytest.approx(value * 100, abs=1e-9)
    assert later[0].baseline != first[0].baseline

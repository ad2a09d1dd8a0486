"""The C tree walks (leadml.ml.native) against the numpy walks they stand in for. No database."""
from __future__ import annotations

import dataclasses
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier, RandomForestRegressor

from leadml.ml import native
from leadml.ml.compiled import TreeEnsemble, compile_scorer
from leadml.ml.treeshap import tree_game

PLAYERS = 5
COLUMN_PLAYERS = np.array([0, 1, 2, 2, 2, 3, 3, 4])


def matrix(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, 8))
    values[:, 2:5] = np.eye(3)[rng.integers(0, 3, size=rows)]
    values[rng.random(rows) < 0.2, 0] = np.nan
    values[rng.random(rows) < 0.4, 7] = np.nan
    return values


def target(values: np.ndarray) -> np.ndarray:
    filled = np.nan_to_num(values, nan=-1.0)
    return (filled[:, 0] + filled[:, 1] * filled[:, 3] - filled[:, 6] * filled[:, 4] + filled[:, 7] > 0).astype(int)


MODELS = {
    # Unlimited depth: paths of 20+ splits, the walk's stack at its deepest.
    "deep_forest": (lambda: RandomForestClassifier(n_estimators=12, random_state=0), True),
    "forest_regressor": (lambda: RandomForestRegressor(n_estimators=10, max_depth=12, random_state=0), False),
    "boosting": (lambda: HistGradientBoostingClassifier(max_iter=40, random_state=0), True),
}


@pytest.fixture(scope="module", params=list(MODELS), ids=list(MODELS))
def ensemble(request: pytest.FixtureRequest) -> TreeEnsemble:
    make, classification = MODELS[request.param]
    train = matrix(1500, seed=1)
    labels = target(train)
    model = make().fit(train, labels if classification else labels + train[:, 5])
    scorer = compile_scorer(estimator=model, calibrator=None, classification=classification)
    assert isinstance(scorer.model, TreeEnsemble)
    return scorer.model


def numpy_walks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_library", lambda: None)


def test_the_library_builds_and_loads_here() -> None:
    assert native.available()
    # Readable by everyone: the image builds it as root and serves as another user.
    assert native.library_path().stat().st_mode & 0o444 == 0o444


def test_a_tree_deeper_than_recorded_is_refused_not_overrun(
    ensemble: TreeEnsemble, caplog: pytest.LogCaptureFixture
) -> None:
    shallow = dataclasses.replace(ensemble, depth=1)  # the C walk's stack: 3 entries
    reference = matrix(1, seed=3)[0]
    game = tree_game(shallow, reference, COLUMN_PLAYERS, PLAYERS)
    assert game is not None
    assert native.shapley(
        shallow, matrix(5, seed=6), reference_right=game.reference_right, node_bits=game.node_bits,
        n_players=PLAYERS, weights_a=game.weights_a, weights_b=game.weights_b,
    ) is None
    assert "native_trees_stack_exceeded" in caplog.text
    walked = game.shapley(matrix(5, seed=6))  # the numpy walk answers instead, exactly as for the real depth
    exact = tree_game(ensemble, reference, COLUMN_PLAYERS, PLAYERS).shapley(matrix(5, seed=6))  # type: ignore[union-attr]
    assert walked is not None and exact is not None
    assert np.allclose(walked.values, exact.values, rtol=0, atol=1e-12)


def test_leaves_and_margins_are_the_numpy_walks_to_the_bit(
    ensemble: TreeEnsemble, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = matrix(300, seed=2)
    values = ensemble.comparable(records)
    assert values is not None
    leaves_c, margins_c = ensemble.leaves(values), ensemble.margin(records)
    numpy_walks(monkeypatch)
    leaves_numpy, margins_numpy = ensemble.leaves(values), ensemble.margin(records)
    assert leaves_c.dtype == np.int64 and leaves_c.shape == (300, ensemble.n_trees)
    assert np.array_equal(leaves_c, leaves_numpy)
    assert margins_c is not None and margins_numpy is not None
    assert np.array_equal(margins_c, margins_numpy)  # same leaves, same summation order
    assert len(np.unique(leaves_c)) > 5 * ensemble.n_trees  # records that go different ways


def test_shapley_values_are_the_numpy_walks_to_rounding(
    ensemble: TreeEnsemble, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = matrix(1, seed=3)[0]
    records = matrix(200, seed=4)
    records[0] = reference
    game = tree_game(ensemble, reference, COLUMN_PLAYERS, PLAYERS)
    assert game is not None
    walked_c = game.shapley(records)
    numpy_walks(monkeypatch)
    walked_numpy = game.shapley(records)
    assert walked_c is not None and walked_numpy is not None
    scale = max(1.0, float(np.abs(walked_numpy.record_margins).max()))
    for field in ("values", "record_margins", "reference_margins"):
        assert np.allclose(getattr(walked_c, field), getattr(walked_numpy, field), rtol=0, atol=1e-12 * scale), field
    assert np.all(walked_c.values[0] == 0.0)  # the reference itself: every player a dummy
    assert np.abs(walked_c.values).max() > 1e-3


def test_concurrent_threads_get_the_same_answers(ensemble: TreeEnsemble) -> None:
    """Serving threads call the library at once (ctypes releases the GIL): nothing is shared but read-only arrays."""
    reference = matrix(1, seed=5)[0]
    game = tree_game(ensemble, reference, COLUMN_PLAYERS, PLAYERS)
    assert game is not None
    batches = [matrix(3, seed=seed) for seed in range(64)]

    def run(records: np.ndarray) -> tuple[Any, ...]:
        walked = game.shapley(records)
        assert walked is not None
        return walked.values.copy(), ensemble.margin(records)

    expected = [run(records) for records in batches]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(run, batches))
    for (values, margins), (values_again, margins_again) in zip(expected, got):
        assert np.array_equal(values, values_again) and np.array_equal(margins, margins_again)


@pytest.fixture()
def source_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """treewalk.c in a folder of its own, so a test builds (or fails to) away from the package."""
    source = tmp_path / "treewalk.c"
    shutil.copyfile(native.SOURCE, source)
    monkeypatch.setattr(native, "SOURCE", source)
    native._library.cache_clear()
    yield source
    native._library.cache_clear()


def test_without_a_compiler_the_numpy_walks_serve(
    source_copy: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CC", str(source_copy.parent / "no-such-compiler"))
    assert not native.available()
    assert "native_trees_unavailable" in caplog.text
    assert not native.library_path().exists()
    assert not list(source_copy.parent.glob(".treewalk-*"))  # no half-built file left behind
    ensemble = TreeEnsemble.__new__(TreeEnsemble)  # not read: the library is refused before
    assert native.leaves(ensemble, np.zeros((1, 1))) is None


def test_a_changed_source_is_built_under_a_new_name(source_copy: Path) -> None:
    first = native.build()
    source_copy.write_text(source_copy.read_text() + "\n/* changed */\n")
    second = native.build()
    assert first != second and first.exists() and second.exists()
    assert native.available()


def test_the_switch_turns_the_library_off(monkeypatch: pytest.MonkeyPatch) -> None:
    native._library.cache_clear()
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    try:
        assert not native.available()
    finally:
        monkeypatch.delenv(native.ENV_SWITCH)
        native._library.cache_clear()
    assert native.available()

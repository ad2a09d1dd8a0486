"""The hyperparameter search of training: GridSearchCV per candidate, then which one serves.

`search_candidates` runs one k-fold grid search per algorithm on the training rows (with
`auto`, until the time budget is spent) and describes each as a candidate row of the
training report. `choose_algorithm` keeps one by cross-validation; for lifetime value,
`run_rate_check` serves the run-rate instead when the chosen model does not beat it on
the held-out customers (`score_held_out` scores every candidate there first).
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import get_scorer, mean_absolute_error, r2_score
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

from leadml.ml.errors import ConfigError
from leadml.ml.evaluate import main_metric, top_decile_capture
from leadml.ml.pipeline import ALGORITHMS, Grid, build_pipeline, clamp_selection_k
from leadml.ml.types import FeatureSchema, TrainingConfig, is_classification

ProgressCallback = Callable[[str, int], None]
Folds: TypeAlias = KFold | StratifiedKFold
# `auto` on lifetime value: among the candidates whose CV top-decile capture is within
# this of the best, the lowest CV MAE wins (see `choose_algorithm`).
CLV_CAPTURE_TOLERANCE = 0.05
CLV_SELECTION = (
    "lowest CV MAE among the candidates whose CV top-decile capture (share of actual value in the "
    f"top 10% by prediction) is within {CLV_CAPTURE_TOLERANCE} of the best; R² is reported, not used: "
    "a few big spenders decide it"
)
# The search's share of a training job's progress: from 15 % to 70 %.
SEARCH_PROGRESS_START = 15
SEARCH_PROGRESS_SPAN = 55


def folds_for(classification: bool, train_y: np.ndarray, config: TrainingConfig) -> Folds:
    """The k folds of the search (stratified for leads, never more folds than the smallest class)."""
    if config.cv_folds < 2:
        raise ConfigError("cv_folds must be at least 2", field="cv_folds")
    if classification:
        smallest_class = int(np.bincount(train_y).min())
        splits = max(2, min(config.cv_folds, smallest_class))
        return StratifiedKFold(n_splits=splits, shuffle=True, random_state=config.random_state)
    return KFold(n_splits=min(config.cv_folds, len(train_y)), shuffle=True, random_state=config.random_state)


def search_candidates(
    grids: dict[str, Grid],
    *,
    schema: FeatureSchema,
    model_type: str,
    preprocessing: dict[str, Any],
    folds: Folds,
    config: TrainingConfig,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    report_progress: ProgressCallback,
) -> tuple[list[dict[str, Any]], dict[str, GridSearchCV]]:
    """Search every grid in turn: ({algorithm, cv_mean, ...} or {algorithm, skipped} rows, fitted searches)."""
    classification = is_classification(model_type)
    scoring = main_metric(classification)
    refit = scoring if classification else "mae"
    candidates: list[dict[str, Any]] = []
    searches: dict[str, GridSearchCV] = {}
    started = time.perf_counter()
    for position, (name, grid) in enumerate(grids.items()):
        elapsed = time.perf_counter() - started
        baseline = ALGORITHMS[name].needs_transactions  # cheap, and what the others must beat
        if searches and not baseline and config.time_budget_s is not None and elapsed >= config.time_budget_s:
            candidates.append(
                {"algorithm": name, "skipped": f"time budget of {config.time_budget_s:g}s spent ({elapsed:.1f}s)"}
            )
            continue
        span = (_search_percent(position, len(grids)), _search_percent(position + 1, len(grids)))
        report_progress(f"search:{name}", span[0])
        search_started = time.perf_counter()
        fit_progress = _FitProgress(report_progress, f"search:{name}", span, _grid_size(grid) * folds.get_n_splits())
        search = _search(
            schema, model_type, name, grid, preprocessing, folds, refit, config, train_x, train_y, fit_progress
        )
        seconds = time.perf_counter() - search_started
        candidates.append(_candidate(name, search, scoring, folds, seconds, value_metrics=not classification))
        searches[name] = search
    return candidates, searches


def _search_percent(position: int, searches: int) -> int:
    return SEARCH_PROGRESS_START + int(SEARCH_PROGRESS_SPAN * position / searches)


def _candidate(
    name: str, search: GridSearchCV, scoring: str, folds: Folds, seconds: float, *, value_metrics: bool
) -> dict[str, Any]:
    """The report's row for one searched algorithm: its best CV scores and parameters."""
    row = search.best_index_
    results = search.cv_results_
    candidate: dict[str, Any] = {
        "algorithm": name,
        "cv_mean": round(float(results[f"mean_test_{scoring}"][row]), 6),
        "cv_std": round(float(results[f"std_test_{scoring}"][row]), 6),
        "best_params": plain_params(search.best_params_),
        "fits": int(len(results["params"]) * folds.get_n_splits() + 1),
        "seconds": round(seconds, 3),
    }
    if value_metrics:
        candidate["cv_mae"] = round(-float(results["mean_test_mae"][row]), 6)
        candidate["cv_top_decile_capture"] = round(float(results["mean_test_capture"][row]), 6)
        candidate["cv_spearman"] = round(float(results["mean_test_spearman"][row]), 6)
    return candidate


def _search(
    schema: FeatureSchema,
    model_type: str,
    algorithm: str,
    grid: Grid,
    preprocessing: dict[str, Any],
    folds: Folds,
    refit: str,
    config: TrainingConfig,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    fit_progress: _FitProgress | None = None,
) -> GridSearchCV:
    pipeline = build_pipeline(
        schema=schema,
        model_type=model_type,
        algorithm=algorithm,
        preprocessing=preprocessing,
        feature_options=config.feature_options,
        random_state=config.random_state,
    )
    if "select" in pipeline.named_steps:
        width = pipeline[:2].fit(train_x, train_y).transform(train_x.head(1)).shape[1]
        clamp_selection_k(pipeline, width)
    classification = is_classification(model_type)
    scorers = _CVScorers(main_metric(classification), value_metrics=not classification)
    parts = grid if isinstance(grid, list) else [grid]
    search = GridSearchCV(
        pipeline,
        param_grid=[{f"model__{name}": values for name, values in part.items()} for part in parts],
        # In-process searches report after every fit (and can be cancelled between fits);
        # parallel workers could not reach the job's callback, so they report per algorithm.
        scoring=fit_progress.wrap(scorers) if fit_progress and config.n_jobs == 1 else scorers,
        refit=refit,
        cv=folds,
        n_jobs=config.n_jobs,
        error_score="raise",
    )
    try:
        with quiet_convergence():
            search.fit(train_x, train_y)
    except ConfigError:
        raise
    except ValueError as error:
        # Bad hyperparameter values (e.g. a negative C) surface here; they are the caller's to fix.
        raise ConfigError(f"training with {algorithm} failed: {error}", field="param_grid") from error
    return search


def choose_algorithm(candidates: list[dict[str, Any]], classification: bool) -> str:
    """The algorithm `auto` keeps by cross-validation.

    Leads: the best CV ROC-AUC. Lifetime value (CLV_SELECTION): the lowest CV MAE among
    the candidates whose CV top-decile capture is within CLV_CAPTURE_TOLERANCE of the
    best. R² is left out on purpose: on spend data a few whales decide it (CV R² 0.62 ±
    0.16 for a forest that then scored 0.35 on held-out customers), while MAE and the
    capture of the top decile move little with them.
    """
    tried = [candidate for candidate in candidates if "cv_mean" in candidate]
    if classification:
        return max(tried, key=lambda candidate: candidate["cv_mean"])["algorithm"]
    best_capture = max(candidate["cv_top_decile_capture"] for candidate in tried)
    eligible = [c for c in tried if c["cv_top_decile_capture"] >= best_capture - CLV_CAPTURE_TOLERANCE]
    return min(eligible, key=lambda candidate: candidate["cv_mae"])["algorithm"]


def score_held_out(
    candidates: list[dict[str, Any]],
    searches: dict[str, GridSearchCV],
    test_x: pd.DataFrame,
    test_y: np.ndarray,
    *,
    classification: bool,
) -> None:
    """Add every searched candidate's held-out scores (uncalibrated) to its row, so the choice by CV can be checked."""
    scoring = main_metric(classification)
    for candidate in candidates:
        if candidate["algorithm"] not in searches:
            continue
        estimator = searches[candidate["algorithm"]].best_estimator_
        if classification:
            candidate["test_roc_auc"] = round(float(get_scorer(scoring)(estimator, test_x, test_y)), 6)
        else:
            predicted = np.clip(estimator.predict(test_x), 0.0, None)  # as served
            candidate |= _held_out_value_scores(test_y, predicted)


def _held_out_value_scores(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    spearman = spearmanr(y_true, predicted).statistic if len(y_true) > 2 else np.nan
    return {
        "test_r2": round(float(r2_score(y_true, predicted)), 6),
        "test_mae": round(float(mean_absolute_error(y_true, predicted)), 6),
        "test_top_decile_capture": round(float(top_decile_capture(y_true, predicted)), 6),
        "test_spearman": None if not np.isfinite(spearman) else round(float(spearman), 6),
    }


def _beats(challenger: dict[str, Any], baseline: dict[str, Any]) -> bool:
    """Lower held-out MAE without giving up more than the tolerance of top-decile capture."""
    return (
        challenger["test_mae"] < baseline["test_mae"]
        and challenger["test_top_decile_capture"] >= baseline["test_top_decile_capture"] - CLV_CAPTURE_TOLERANCE
    )


def run_rate_check(chosen: str, candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """Serve the run-rate when the model chosen by CV does not beat it on the held-out customers.

    Reads the candidates' held-out scores that `score_held_out` added.
    """
    by_name = {candidate["algorithm"]: candidate for candidate in candidates if "cv_mean" in candidate}
    selection: dict[str, Any] = {"criterion": CLV_SELECTION, "chosen_by_cv": chosen, "served": chosen}
    if "run_rate" not in by_name or chosen == "run_rate":
        selection["run_rate_check"] = (
            "the run-rate itself was chosen" if chosen == "run_rate" else "no run-rate on this data (not built from a transaction log)"
        )
        return selection
    model, run_rate = by_name[chosen], by_name["run_rate"]
    if _beats(model, run_rate):
        selection["run_rate_check"] = (
            f"{chosen} beats the run-rate on the held-out customers: MAE {model['test_mae']:.4g} vs "
            f"{run_rate['test_mae']:.4g}, top-decile capture {model['test_top_decile_capture']:.3f} vs "
            f"{run_rate['test_top_decile_capture']:.3f}"
        )
        return selection
    selection["served"] = "run_rate"
    selection["run_rate_check"] = (
        f"{chosen}, chosen by CV, does not beat the run-rate on the held-out customers (MAE "
        f"{model['test_mae']:.4g} vs {run_rate['test_mae']:.4g}, top-decile capture "
        f"{model['test_top_decile_capture']:.3f} vs {run_rate['test_top_decile_capture']:.3f}): the run-rate serves"
    )
    return selection


class _CVScorers:
    """GridSearchCV's dict of scores for one fitted fold, from a single prediction.

    Leads: the main metric. Lifetime value: R² (reported), negative MAE (what the search
    refits on), top-decile capture and Spearman, of predictions clipped at 0 as served.
    """

    def __init__(self, scoring: str, *, value_metrics: bool) -> None:
        self.scoring = scoring
        self.value_metrics = value_metrics
        self.main = get_scorer(scoring)

    def __call__(self, estimator: Any, X: Any, y: Any) -> dict[str, float]:
        if not self.value_metrics:
            return {self.scoring: self.main(estimator, X, y)}
        y = np.asarray(y, dtype=float)
        predicted = np.clip(estimator.predict(X), 0.0, None)
        spearman = spearmanr(y, predicted).statistic if len(y) > 2 else np.nan
        return {
            self.scoring: float(r2_score(y, predicted)),
            "mae": -float(mean_absolute_error(y, predicted)),
            "capture": float(top_decile_capture(y, predicted)),
            "spearman": float(spearman) if np.isfinite(spearman) else 0.0,
        }


def _grid_size(grid: Grid) -> int:
    total = 0
    for part in grid if isinstance(grid, list) else [grid]:
        size = 1
        for values in part.values():
            size *= len(values)
        total += size
    return total


class _FitProgress:
    """Report progress after each cross-validation fit of one algorithm's search."""

    def __init__(self, report: ProgressCallback, step: str, span: tuple[int, int], total_fits: int) -> None:
        self.report = report
        self.step = step
        self.span = span
        self.total_fits = max(total_fits, 1)
        self.done = 0

    def wrap(self, scorer: Callable[..., Any]) -> Callable[..., Any]:
        def scored(estimator: Any, X: Any, y: Any) -> Any:
            score = scorer(estimator, X, y)
            self.done += 1
            low, high = self.span
            fraction = min(self.done / self.total_fits, 1.0)
            step = f"{self.step} fit {min(self.done, self.total_fits)}/{self.total_fits}"
            self.report(step, low + int((high - low) * fraction))
            return score

        return scored


@contextmanager
def quiet_convergence() -> Iterator[None]:
    """An MLP reaching max_iter is a normal outcome of a bounded search, not a fault."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def plain_params(params: dict[str, Any]) -> dict[str, Any]:
    """Strip the pipeline prefix and make values JSON-friendly."""
    plain = {}
    for name, value in params.items():
        key = name.removeprefix("model__")
        if isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, tuple):
            value = list(value)
        plain[key] = value
    return plain

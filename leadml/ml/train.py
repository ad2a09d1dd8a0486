"""Train one model version: validate, split, search, evaluate, explain, package.

`train_model` is what the django-q2 task, the demo set-up and the tests call. It reports
progress through a callback (step name, percent) so the caller can record it and cancel
by raising from inside the callback.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import brier_score_loss, get_scorer, log_loss
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

from leadml.ml.bundle import REFERENCE_SAMPLE_ROWS, ModelBundle
from leadml.ml.errors import ConfigError, DataError
from leadml.ml.evaluate import (
    calibration_curve_points,
    classification_metrics,
    main_metric,
    prediction_pairs,
    regression_metrics,
    roc_curve_points,
    score_histogram,
)
from leadml.ml.explain import feature_importance
from leadml.ml.features import FeatureEngineer, infer_schema, replace_placeholders
from leadml.ml.pipeline import (
    ALGORITHMS,
    AUTO,
    BTYD_NEEDS_TRANSACTIONS,
    algorithms_for,
    build_pipeline,
    clamp_selection_k,
    default_grid,
    make_estimator,
    resolve_preprocessing,
)
from leadml.ml.quality import quality_report
from leadml.ml.reasons import typical_record
from leadml.ml.confidence import value_confidence_fit
from leadml.ml.split import holdout_split
from leadml.ml.targets import check_trainable
from leadml.ml.types import (
    CrossValidation,
    DroppedColumn,
    FeatureSchema,
    TrainingConfig,
    TrainResult,
    is_classification,
)

ProgressCallback = Callable[[str, int], None]
# Isotonic calibration needs enough rows to fit its step function; Platt scaling below.
ISOTONIC_MIN_ROWS = 5000


def _no_progress(step: str, percent: int) -> None:
    return None


def validate_param_grid(model_type: str, algorithm: str, param_grid: dict[str, Any] | None) -> dict[str, list[Any]]:
    """Return the grid for one algorithm, refusing parameter names the estimator lacks."""
    if not param_grid:
        return default_grid(model_type, algorithm)
    if not isinstance(param_grid, dict):
        raise ConfigError("param_grid must be an object of parameter name -> list of values", field="param_grid")
    valid = set(make_estimator(model_type, algorithm, 0).get_params())
    unknown = sorted(set(param_grid) - valid)
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) for {algorithm}: {', '.join(unknown)}; valid: {', '.join(sorted(valid))}",
            field="param_grid",
        )
    grid: dict[str, list[Any]] = {}
    for name, values in param_grid.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ConfigError(f"param_grid.{name} must list at least one value", field=f"param_grid.{name}")
        grid[name] = values
    return grid


def grids_for(
    model_type: str, algorithm: str, param_grid: dict[str, Any] | None, *, transactions: bool | None = None
) -> dict[str, dict[str, list[Any]]]:
    """Return {algorithm: grid} for the algorithms a request will try.

    `transactions` says whether the data is a customer table built from a transaction
    log (None: not known yet); `auto` adds the BTYD model only when it is.
    """
    if algorithm not in ALGORITHMS and algorithm != AUTO:
        raise ConfigError(f"unknown algorithm {algorithm!r}", field="algorithm")
    if algorithm != AUTO:
        make_estimator(model_type, algorithm, 0)  # refuses inapplicable pairs
        if ALGORITHMS[algorithm].needs_transactions and transactions is False:
            raise ConfigError(BTYD_NEEDS_TRANSACTIONS, field="algorithm")
        return {algorithm: validate_param_grid(model_type, algorithm, param_grid)}
    grids = {}
    for name in algorithms_for(model_type, transactions=bool(transactions)):
        # With `auto`, param_grid is keyed by algorithm: {"random_forest": {...}, ...}.
        override = (param_grid or {}).get(name)
        grids[name] = validate_param_grid(model_type, name, override)
    unknown = sorted(set(param_grid or {}) - set(grids))
    if unknown:
        raise ConfigError(
            f"with algorithm auto, param_grid is keyed by algorithm ({', '.join(grids)}); unknown: {', '.join(unknown)}",
            field="param_grid",
        )
    return grids


def select_features(frame: pd.DataFrame, wanted: tuple[str, ...] | None) -> pd.DataFrame:
    if not wanted:
        return frame
    missing = [name for name in wanted if name not in frame.columns]
    if missing:
        raise ConfigError(
            f"training_config.features names columns the data lacks: {', '.join(missing)}", field="features"
        )
    return frame[list(wanted)]


def train_model(
    features: pd.DataFrame,
    labels: pd.Series,
    *,
    model_type: str,
    algorithm: str,
    config: TrainingConfig | None = None,
    min_rows: int = 50,
    min_rows_per_class: int = 10,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train, evaluate and package a model on raw features and encoded labels."""
    config = config or TrainingConfig()
    report_progress = progress or _no_progress
    classification = is_classification(model_type)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    report_progress("validate", 5)
    preprocessing = resolve_preprocessing(config.preprocessing)
    grids_for(model_type, algorithm, config.param_grid)  # refuse a bad request before reading data
    # Every column as sent, for comparing with the active model (which may read others).
    raw_features = features.reset_index(drop=True)
    features = select_features(raw_features, config.features)
    labels = labels.reset_index(drop=True).astype(float)
    check_trainable(labels, model_type=model_type, min_rows=min_rows, min_rows_per_class=min_rows_per_class)
    features = replace_placeholders(features, config.feature_options.missing_values)
    quality = quality_report(features, labels, model_type=model_type)
    excluded = _leakage_exclusions(quality["leakage_suspects"], config.allow_columns)
    labelled = labels.notna().to_numpy()
    features, target = features[labelled].reset_index(drop=True), labels[labelled].to_numpy()
    raw_features = raw_features[labelled].reset_index(drop=True)
    if classification:
        target = target.astype(int)
    schema = infer_schema(features.drop(columns=list(excluded)), keep=config.allow_columns)
    schema = FeatureSchema(
        columns=schema.columns,
        dropped=(*schema.dropped, *(DroppedColumn(name, reason) for name, reason in excluded.items())),
    )
    transactions = FeatureEngineer(schema, config.feature_options).fit(None).uses_btyd
    grids = grids_for(model_type, algorithm, config.param_grid, transactions=transactions)
    if not schema.columns:
        raise DataError("no usable feature columns: every column is an identifier, empty or constant", field="rows")
    timings["validate"] = time.perf_counter() - started

    report_progress("split", 12)
    split = holdout_split(
        raw_features, target, test_size=config.test_size, classification=classification, salt=config.random_state
    )
    train_x, test_x = features.iloc[split.train], features.iloc[split.test]
    train_y, test_y = target[split.train], target[split.test]
    folds = _folds(classification, train_y, config)
    scoring = main_metric(classification)

    candidates: list[dict[str, Any]] = []
    searches: dict[str, GridSearchCV] = {}
    search_started_all = time.perf_counter()
    for position, (name, grid) in enumerate(grids.items()):
        elapsed = time.perf_counter() - search_started_all
        if searches and config.time_budget_s is not None and elapsed >= config.time_budget_s:
            candidates.append(
                {"algorithm": name, "skipped": f"time budget of {config.time_budget_s:g}s spent ({elapsed:.1f}s)"}
            )
            continue
        percent = 15 + int(55 * position / len(grids))
        report_progress(f"search:{name}", percent)
        search_started = time.perf_counter()
        span = (percent, 15 + int(55 * (position + 1) / len(grids)))
        fit_progress = _FitProgress(report_progress, f"search:{name}", span, _grid_size(grid) * folds.get_n_splits())
        search = _search(
            schema, model_type, name, grid, preprocessing, folds, scoring, config, train_x, train_y, fit_progress
        )
        seconds = time.perf_counter() - search_started
        cv_mean = float(search.best_score_)
        candidate: dict[str, Any] = {
            "algorithm": name,
            "cv_mean": round(cv_mean, 6),
            "cv_std": round(float(search.cv_results_[f"std_test_{scoring}"][search.best_index_]), 6),
            "best_params": _plain_params(search.best_params_),
            "fits": int(len(search.cv_results_["params"]) * folds.get_n_splits() + 1),
            "seconds": round(seconds, 3),
        }
        if not classification:
            candidate["cv_mae"] = round(-float(search.cv_results_["mean_test_mae"][search.best_index_]), 6)
        candidates.append(candidate)
        searches[name] = search
    timings["search"] = time.perf_counter() - search_started_all
    chosen = _choose(candidates, classification)
    search = searches[chosen]
    pipeline = search.best_estimator_
    calibrator = None
    calibration: dict[str, Any] | None = None
    if classification and config.calibrate:
        report_progress("calibrate", 72)
        calibrate_started = time.perf_counter()
        calibrator, calibration = _calibrate(search, folds, train_x, train_y, test_x, test_y)
        pipeline = calibrator.calibrated_classifiers_[0].estimator
        timings["calibrate"] = time.perf_counter() - calibrate_started

    report_progress("evaluate", 80)
    evaluate_started = time.perf_counter()
    value_confidence = None
    if classification:
        scorer = calibrator if calibrator is not None else pipeline
        test_predictions = scorer.predict_proba(test_x)[:, 1]
        metrics = classification_metrics(test_y, test_predictions)
        metrics["calibration_curve"] = calibration_curve_points(test_y, test_predictions)
        metrics["roc_curve"] = roc_curve_points(test_y, test_predictions)
        metrics["score_histogram"] = score_histogram(test_predictions, unit_range=True)
        if calibration is not None:
            metrics["brier_uncalibrated"] = calibration["brier_before"]
    else:
        test_predictions = np.clip(pipeline.predict(test_x), 0.0, None)
        metrics = regression_metrics(test_y, test_predictions)
        metrics["predicted_vs_actual"] = prediction_pairs(test_y, test_predictions, seed=config.random_state)
        metrics["score_histogram"] = score_histogram(test_predictions)
        value_confidence = value_confidence_fit(test_predictions, test_y)
    # Every candidate's held-out score too (uncalibrated), so the choice by CV can be checked.
    for candidate in candidates:
        if candidate["algorithm"] in searches:
            estimator = searches[candidate["algorithm"]].best_estimator_
            candidate[f"test_{scoring}"] = round(float(get_scorer(scoring)(estimator, test_x, test_y)), 6)
    timings["evaluate"] = time.perf_counter() - evaluate_started

    report_progress("explain", 90)
    explain_started = time.perf_counter()
    importance, method = feature_importance(
        pipeline, test_x, test_y, scoring=scoring, random_state=config.random_state
    )
    timings["explain"] = time.perf_counter() - explain_started

    report_progress("package", 95)
    cv_row = search.best_index_
    cross_validation = CrossValidation(
        metric=scoring,
        mean=round(float(search.best_score_), 6),
        std=round(float(search.cv_results_[f"std_test_{scoring}"][cv_row]), 6),
        folds=folds.get_n_splits(),
    )
    best_params = _plain_params(search.best_params_)
    bundle = ModelBundle(
        model_type=model_type,
        algorithm=chosen,
        pipeline=pipeline,
        calibrator=calibrator,
        schema=schema,
        trained_at=datetime.now(timezone.utc).isoformat(),
        feature_importance=importance,
        explanation_method=method,
        metrics=metrics,
        score_quantiles=[float(value) for value in np.percentile(test_predictions, np.arange(101))],
        holdout_threshold=split.threshold,
        holdout_key=split.key,
        baseline_record=typical_record(schema, train_x),
        reference_sample=_reference_sample(train_x, schema, config.random_state),
        value_confidence=value_confidence,
    )
    # The parity gate: numpy serves this version only if it reproduces the held-out outputs.
    bundle.serving = bundle.check_compiled(test_x)
    timings["total"] = time.perf_counter() - started
    report = {
        "rows": quality["rows"],
        "labelled_rows": quality["labelled_rows"],
        "split": {
            "method": "hash of each row's id (or values) below test_size, per class",
            "test_size": config.test_size,
            "key": split.key,
            "threshold": split.threshold,
        },
        "train_rows": int(len(train_y)),
        "test_rows": int(len(test_y)),
        "used_columns": [column.as_dict() for column in schema.columns],
        "dropped_columns": [{"name": d.name, "reason": d.reason} for d in schema.dropped],
        "preprocessing": preprocessing,
        "feature_engineering": pipeline.named_steps["features"].explain(),
        "leakage_excluded": [{"column": name, "reason": reason} for name, reason in excluded.items()],
        "calibration": calibration,
        "quality": quality,
        "candidates": candidates,
        "cross_validation": cross_validation.__dict__,
        "timings_seconds": {key: round(value, 3) for key, value in timings.items()},
        "estimator": type(pipeline.named_steps["model"]).__name__,
        "value_confidence": value_confidence.as_dict() if value_confidence is not None else None,
        "serving": bundle.serving.as_dict(),
    }
    return TrainResult(
        bundle=bundle,
        algorithm=chosen,
        best_params=best_params,
        cross_validation=cross_validation,
        metrics=metrics,
        feature_importance=tuple(importance),
        explanation_method=method,
        report=report,
        holdout=(raw_features.iloc[split.test], test_y, split.positions[split.test]),
    )


def _folds(classification: bool, train_y: np.ndarray, config: TrainingConfig) -> KFold | StratifiedKFold:
    if config.cv_folds < 2:
        raise ConfigError("cv_folds must be at least 2", field="cv_folds")
    if classification:
        smallest_class = int(np.bincount(train_y).min())
        splits = max(2, min(config.cv_folds, smallest_class))
        return StratifiedKFold(n_splits=splits, shuffle=True, random_state=config.random_state)
    return KFold(n_splits=min(config.cv_folds, len(train_y)), shuffle=True, random_state=config.random_state)


def _search(
    schema: FeatureSchema,
    model_type: str,
    algorithm: str,
    grid: dict[str, list[Any]],
    preprocessing: dict[str, Any],
    folds: KFold | StratifiedKFold,
    scoring: str,
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
    scorers = _CVScorers(scoring, with_mae=not is_classification(model_type))
    search = GridSearchCV(
        pipeline,
        param_grid={f"model__{name}": values for name, values in grid.items()},
        # In-process searches report after every fit (and can be cancelled between fits);
        # parallel workers could not reach the job's callback, so they report per algorithm.
        scoring=fit_progress.wrap(scorers) if fit_progress and config.n_jobs == 1 else scorers,
        refit=scoring,
        cv=folds,
        n_jobs=config.n_jobs,
        error_score="raise",
    )
    try:
        with _quiet_convergence():
            search.fit(train_x, train_y)
    except ConfigError:
        raise
    except ValueError as error:
        # Bad hyperparameter values (e.g. a negative C) surface here; they are the caller's to fix.
        raise ConfigError(f"training with {algorithm} failed: {error}", field="param_grid") from error
    return search


# `auto` on lifetime value: candidates within this much CV R² of the best count as tied,
# and the tie goes to the lowest CV MAE. R² on spend data swings with a few big spenders
# (fold std ~0.15 on CDNOW), so a sliver of R² is noise while MAE differences are not.
CLV_R2_TIE = 0.01


def _choose(candidates: list[dict[str, Any]], classification: bool) -> str:
    """The algorithm `auto` keeps: best CV score (for CLV, near-ties go to the lower CV MAE)."""
    tried = [candidate for candidate in candidates if "cv_mean" in candidate]
    best = max(tried, key=lambda candidate: candidate["cv_mean"])
    if classification:
        return best["algorithm"]
    tied = [c for c in tried if best["cv_mean"] - c["cv_mean"] <= CLV_R2_TIE]
    return min(tied, key=lambda candidate: candidate["cv_mae"])["algorithm"]


class _CVScorers:
    """The main metric (and, for lifetime value, MAE) of one fitted fold, as GridSearchCV's dict."""

    def __init__(self, scoring: str, *, with_mae: bool) -> None:
        self.scorers = {scoring: get_scorer(scoring)}
        if with_mae:
            self.scorers["mae"] = get_scorer("neg_mean_absolute_error")

    def __call__(self, estimator: Any, X: Any, y: Any) -> dict[str, float]:
        return {name: scorer(estimator, X, y) for name, scorer in self.scorers.items()}


def _grid_size(grid: dict[str, list[Any]]) -> int:
    size = 1
    for values in grid.values():
        size *= len(values)
    return size


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


def _reference_sample(train_x: pd.DataFrame, schema: FeatureSchema, random_state: int) -> pd.DataFrame:
    """Up to REFERENCE_SAMPLE_ROWS training records, the schema's columns only, kept with the version."""
    sample = train_x[list(schema.names)]
    if len(sample) > REFERENCE_SAMPLE_ROWS:
        sample = sample.sample(REFERENCE_SAMPLE_ROWS, random_state=random_state)
    return sample.reset_index(drop=True)


def _calibrate(
    search: GridSearchCV,
    folds: KFold | StratifiedKFold,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    test_x: pd.DataFrame,
    test_y: np.ndarray,
) -> tuple[CalibratedClassifierCV, dict[str, Any]]:
    """Calibrate the chosen pipeline on out-of-fold predictions of the training rows.

    Isotonic regression once there is enough data to fit a step function without
    overfitting it, Platt's sigmoid below that. `ensemble=False` keeps one pipeline
    fitted on all training rows (the one explained and saved) plus one calibrator.
    """
    method = "isotonic" if len(train_y) >= ISOTONIC_MIN_ROWS else "sigmoid"
    calibrator = CalibratedClassifierCV(clone(search.best_estimator_), method=method, cv=folds, ensemble=False)
    with _quiet_convergence():
        calibrator.fit(train_x, train_y)
    before = search.best_estimator_.predict_proba(test_x)[:, 1]
    after = calibrator.predict_proba(test_x)[:, 1]
    return calibrator, {
        "method": method,
        "fitted_on": f"out-of-fold predictions of {len(train_y)} training rows ({folds.get_n_splits()} folds)",
        "brier_before": round(float(brier_score_loss(test_y, before)), 6),
        "brier_after": round(float(brier_score_loss(test_y, after)), 6),
        "log_loss_before": round(float(log_loss(test_y, np.clip(before, 1e-6, 1 - 1e-6), labels=[0, 1])), 6),
        "log_loss_after": round(float(log_loss(test_y, np.clip(after, 1e-6, 1 - 1e-6), labels=[0, 1])), 6),
    }


@contextmanager
def _quiet_convergence() -> Iterator[None]:
    """An MLP reaching max_iter is a normal outcome of a bounded search, not a fault."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _leakage_exclusions(suspects: list[dict[str, Any]], allowed: tuple[str, ...]) -> dict[str, str]:
    """Leakage suspects to leave out of training: all of them except those the tenant allows."""
    return {
        suspect["column"]: f"leakage suspect, excluded: {suspect['reason']} (keep it with training_config.allow_columns)"
        for suspect in suspects
        if suspect["column"] not in allowed
    }


def _plain_params(params: dict[str, Any]) -> dict[str, Any]:
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

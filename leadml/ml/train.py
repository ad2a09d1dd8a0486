"""Train one model version: validate, split, search, evaluate, explain, package.

`train_model` is what the django-q2 task, the demo set-up and the tests call. It reports
progress through a callback (step name, percent) so the caller can record it and cancel
by raising from inside the callback.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, train_test_split

from leadml.ml.bundle import ModelBundle
from leadml.ml.errors import ConfigError, DataError
from leadml.ml.evaluate import classification_metrics, main_metric, regression_metrics
from leadml.ml.explain import feature_importance
from leadml.ml.features import infer_schema
from leadml.ml.pipeline import (
    ALGORITHMS,
    AUTO,
    algorithms_for,
    build_pipeline,
    clamp_selection_k,
    default_grid,
    make_estimator,
    resolve_preprocessing,
)
from leadml.ml.quality import quality_report
from leadml.ml.targets import check_trainable
from leadml.ml.types import CrossValidation, FeatureSchema, TrainingConfig, TrainResult, is_classification

ProgressCallback = Callable[[str, int], None]


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


def grids_for(model_type: str, algorithm: str, param_grid: dict[str, Any] | None) -> dict[str, dict[str, list[Any]]]:
    """Return {algorithm: grid} for the algorithms a request will try."""
    if algorithm not in ALGORITHMS and algorithm != AUTO:
        raise ConfigError(f"unknown algorithm {algorithm!r}", field="algorithm")
    if algorithm != AUTO:
        make_estimator(model_type, algorithm, 0)  # refuses inapplicable pairs
        return {algorithm: validate_param_grid(model_type, algorithm, param_grid)}
    grids = {}
    for name in algorithms_for(model_type):
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
    grids = grids_for(model_type, algorithm, config.param_grid)
    features = select_features(features.reset_index(drop=True), config.features)
    labels = labels.reset_index(drop=True).astype(float)
    check_trainable(labels, model_type=model_type, min_rows=min_rows, min_rows_per_class=min_rows_per_class)
    quality = quality_report(features, labels, model_type=model_type)
    labelled = labels.notna().to_numpy()
    features, target = features[labelled].reset_index(drop=True), labels[labelled].to_numpy()
    if classification:
        target = target.astype(int)
    schema = infer_schema(features)
    if not schema.columns:
        raise DataError("no usable feature columns: every column is an identifier, empty or constant", field="rows")
    timings["validate"] = time.perf_counter() - started

    report_progress("split", 12)
    train_x, test_x, train_y, test_y = train_test_split(
        features,
        target,
        test_size=config.test_size,
        random_state=config.random_state,
        stratify=target if classification else None,
    )
    folds = _folds(classification, train_y, config)
    scoring = main_metric(classification)

    candidates: list[dict[str, Any]] = []
    best: tuple[float, str, GridSearchCV] | None = None
    for position, (name, grid) in enumerate(grids.items()):
        percent = 15 + int(60 * position / len(grids))
        report_progress(f"search:{name}", percent)
        search_started = time.perf_counter()
        search = _search(schema, model_type, name, grid, preprocessing, folds, scoring, config, train_x, train_y)
        seconds = time.perf_counter() - search_started
        cv_mean = float(search.best_score_)
        candidates.append(
            {
                "algorithm": name,
                "cv_mean": round(cv_mean, 6),
                "cv_std": round(float(search.cv_results_["std_test_score"][search.best_index_]), 6),
                "best_params": _plain_params(search.best_params_),
                "seconds": round(seconds, 3),
            }
        )
        if best is None or cv_mean > best[0]:
            best = (cv_mean, name, search)
    timings["search"] = time.perf_counter() - started - timings["validate"]
    assert best is not None
    _, chosen, search = best
    pipeline = search.best_estimator_

    report_progress("evaluate", 80)
    evaluate_started = time.perf_counter()
    if classification:
        test_predictions = pipeline.predict_proba(test_x)[:, 1]
        metrics = classification_metrics(test_y, test_predictions)
    else:
        test_predictions = np.clip(pipeline.predict(test_x), 0.0, None)
        metrics = regression_metrics(test_y, test_predictions)
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
        std=round(float(search.cv_results_["std_test_score"][cv_row]), 6),
        folds=folds.get_n_splits(),
    )
    best_params = _plain_params(search.best_params_)
    bundle = ModelBundle(
        model_type=model_type,
        algorithm=chosen,
        pipeline=pipeline,
        schema=schema,
        trained_at=datetime.now(timezone.utc).isoformat(),
        feature_importance=importance,
        explanation_method=method,
        metrics=metrics,
        score_quantiles=[float(value) for value in np.percentile(test_predictions, np.arange(101))],
    )
    timings["total"] = time.perf_counter() - started
    report = {
        "rows": quality["rows"],
        "labelled_rows": quality["labelled_rows"],
        "train_rows": int(len(train_y)),
        "test_rows": int(len(test_y)),
        "used_columns": [column.as_dict() for column in schema.columns],
        "dropped_columns": [{"name": d.name, "reason": d.reason} for d in schema.dropped],
        "preprocessing": preprocessing,
        "quality": quality,
        "candidates": candidates,
        "cross_validation": cross_validation.__dict__,
        "timings_seconds": {key: round(value, 3) for key, value in timings.items()},
        "estimator": type(pipeline.named_steps["model"]).__name__,
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
) -> GridSearchCV:
    pipeline = build_pipeline(
        schema=schema,
        model_type=model_type,
        algorithm=algorithm,
        preprocessing=preprocessing,
        random_state=config.random_state,
    )
    if "select" in pipeline.named_steps:
        width = pipeline[:2].fit(train_x, train_y).transform(train_x.head(1)).shape[1]
        clamp_selection_k(pipeline, width)
    search = GridSearchCV(
        pipeline,
        param_grid={f"model__{name}": values for name, values in grid.items()},
        scoring=scoring,
        cv=folds,
        n_jobs=config.n_jobs,
        refit=True,
        error_score="raise",
    )
    try:
        search.fit(train_x, train_y)
    except ValueError as error:
        # Bad hyperparameter values (e.g. a negative C) surface here; they are the caller's to fix.
        raise ConfigError(f"training with {algorithm} failed: {error}", field="param_grid") from error
    return search


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

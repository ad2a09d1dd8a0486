"""Train one model version: validate, split, judge leakage, search, calibrate, evaluate, explain, package.

`train_model` is what the django-q2 task, the demo set-up and the tests call. It reports
progress through a callback (step name, percent) so the caller can record it and cancel
by raising from inside the callback.

Which rows do what: the held-out rows (leadml.ml.split, `test_size`) are never trained
on; leakage evidence, the leakage probe, the hyperparameter search (k-fold CV) and the
calibration (out-of-fold scores in the search's folds) all read the training rows. The
held-out rows give the test metrics and decide only two guards: a calibrator that costs
ROC-AUC is not used, and a lifetime-value model that does not beat the run-rate is not
served.
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
from scipy.special import expit
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import ConvergenceWarning
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, get_scorer, log_loss, mean_absolute_error, r2_score, roc_auc_score
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
    top_decile_capture,
)
from leadml.ml.explain import feature_importance
from leadml.ml.features import FeatureEngineer, infer_schema, replace_placeholders
from leadml.ml.leakage import LeakageProbe, probe_leakage
from leadml.ml.pipeline import (
    ALGORITHMS,
    AUTO,
    BTYD_NEEDS_TRANSACTIONS,
    BTYD_SWITCHED_OFF,
    RUN_RATE_INPUTS,
    Grid,
    algorithms_for,
    build_pipeline,
    clamp_selection_k,
    default_grid,
    make_estimator,
    resolve_preprocessing,
    served_estimator,
    without_heavy_tail,
)
from leadml.ml.quality import EXCLUDE, WARN, leakage_evidence, quality_report
from leadml.ml.reasons import typical_record
from leadml.ml.confidence import value_confidence_fit
from leadml.ml.split import holdout_split
from leadml.ml.transactions import FEATURE_COLUMNS as TRANSACTION_FEATURES
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
# A calibrator may cost at most this much held-out ROC-AUC (isotonic steps create ties).
CALIBRATION_MAX_AUC_LOSS = 0.005
CALIBRATION_METHODS = ("none", "sigmoid", "isotonic")
# `auto` on lifetime value: among the candidates whose CV top-decile capture is within
# this of the best, the lowest CV MAE wins (see `_choose`).
CLV_CAPTURE_TOLERANCE = 0.05
CLV_SELECTION = (
    "lowest CV MAE among the candidates whose CV top-decile capture (share of actual value in the "
    f"top 10% by prediction) is within {CLV_CAPTURE_TOLERANCE} of the best; R² is reported, not used: "
    "a few big spenders decide it"
)


def _no_progress(step: str, percent: int) -> None:
    return None


def validate_param_grid(model_type: str, algorithm: str, param_grid: dict[str, Any] | list[Any] | None) -> Grid:
    """Return the grid for one algorithm, refusing parameter names the estimator lacks.

    A list of grids is searched part by part, as GridSearchCV does (e.g. ridge alphas
    with one loss, Tweedie alphas with the other).
    """
    if not param_grid:
        return default_grid(model_type, algorithm)
    if isinstance(param_grid, list) and param_grid and all(isinstance(part, dict) for part in param_grid):
        parts = [validate_param_grid(model_type, algorithm, part) for part in param_grid]
        return [part for grid in parts for part in (grid if isinstance(grid, list) else [grid])]
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
) -> dict[str, Grid]:
    """Return {algorithm: grid} for the algorithms a request will try.

    `transactions` says whether the data is a customer table built from a transaction
    log (None: not known yet); `auto` adds the BTYD model and the run-rate only when it is.
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
    known = set(algorithms_for(model_type, transactions=True)) if transactions is None else set(grids)
    unknown = sorted(set(param_grid or {}) - known)
    if unknown:
        raise ConfigError(
            f"with algorithm auto, param_grid is keyed by algorithm ({', '.join(grids)}); unknown: {', '.join(unknown)}",
            field="param_grid",
        )
    return grids


FEATURES_FIELD = "training_config.features"


def check_feature_names(wanted: tuple[str, ...] | list[str] | None, columns: Any, *, target: str | None = None) -> None:
    """Refuse a `features` list naming a column the data lacks (or the target): never ignore it."""
    if not wanted:
        return
    available = [str(column) for column in columns]
    missing = [name for name in wanted if name not in available or name == target]
    if missing:
        shown = ", ".join(name for name in available if name != target)
        raise ConfigError(
            f"training_config.features names columns the data lacks: {', '.join(map(repr, missing))}; "
            f"columns are: {shown}",
            field=FEATURES_FIELD,
        )


def select_features(frame: pd.DataFrame, wanted: tuple[str, ...] | None) -> pd.DataFrame:
    if not wanted:
        return frame
    check_feature_names(wanted, frame.columns)
    return frame[list(dict.fromkeys(wanted))]


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
    # A customer table the service built from a transaction log holds only what happened
    # on or before the cut-off: those columns cannot leak, however well they predict.
    built = config.feature_options.btyd_horizon_days is not None and set(TRANSACTION_FEATURES) <= set(features.columns)
    trusted = set(TRANSACTION_FEATURES) if built else set()
    quality = quality_report(features, labels, model_type=model_type, trusted=trusted)
    labelled = labels.notna().to_numpy()
    features, target = features[labelled].reset_index(drop=True), labels[labelled].to_numpy()
    raw_features = raw_features[labelled].reset_index(drop=True)
    if classification:
        target = target.astype(int)
    # The tenant's explicit choices win over inference; `allow_columns` also over leakage.
    chosen = set(config.features or ())
    allowed = set(config.allow_columns)
    timings["validate"] = time.perf_counter() - started

    report_progress("split", 10)
    split = holdout_split(
        raw_features, target, test_size=config.test_size, classification=classification, salt=config.random_state
    )
    train_y, test_y = target[split.train], target[split.test]

    # Leakage is judged on the training rows only, so held-out rows stay unseen by every choice.
    leakage_started = time.perf_counter()
    train_candidates = features.iloc[split.train].reset_index(drop=True)
    evidence = leakage_evidence(
        train_candidates, pd.Series(train_y, dtype=float), model_type=model_type,
        schema=infer_schema(train_candidates, keep=chosen | allowed, drop_constant=False), trusted=trusted,
    )
    excluded = {item["column"]: item["reason"] for item in evidence if item["verdict"] == EXCLUDE}
    excluded = {name: reason for name, reason in excluded.items() if name not in allowed}
    probe: LeakageProbe | None = None
    if any(item["verdict"] in (EXCLUDE, WARN) for item in evidence):
        report_progress("leakage", 12)
        probe = probe_leakage(
            train_candidates, train_y, evidence, model_type=model_type, excluded=set(excluded), keep=allowed,
            feature_options=config.feature_options, random_state=config.random_state,
        )
        if probe is not None:
            excluded |= {name: reason for name, reason in probe.upgraded.items() if name not in allowed}
    timings["leakage"] = time.perf_counter() - leakage_started

    schema = infer_schema(features.drop(columns=list(excluded)), keep=chosen | allowed)
    schema_warnings = list(schema.warnings)
    schema_warnings += [
        f"{name}: named in features, but excluded as a leakage suspect; add it to allow_columns to keep it"
        for name in excluded
        if name in chosen
    ]
    schema = FeatureSchema(
        columns=schema.columns,
        dropped=(
            *schema.dropped,
            *(
                DroppedColumn(name, f"leakage suspect, excluded: {reason} (keep it with training_config.allow_columns)")
                for name, reason in excluded.items()
            ),
        ),
        warnings=tuple(schema_warnings),
    )
    engineer = FeatureEngineer(schema, config.feature_options).fit(None)
    grids = grids_for(model_type, algorithm, config.param_grid, transactions=engineer.from_transactions)
    if not classification and float(np.min(target)) < 0:
        grids = {name: without_heavy_tail(grid) for name, grid in grids.items()}
    numeric = {column.name for column in schema.columns if column.kind == "numeric"}
    skipped: list[dict[str, Any]] = []
    if "btyd" in grids and not engineer.uses_btyd:
        if algorithm == "btyd":
            raise ConfigError(BTYD_SWITCHED_OFF, field="algorithm")
        del grids["btyd"]
        skipped.append({"algorithm": "btyd", "skipped": "feature_engineering.btyd is off"})
    if "run_rate" in grids and not set(RUN_RATE_INPUTS) <= numeric:
        missing = ", ".join(sorted(set(RUN_RATE_INPUTS) - numeric))
        if algorithm == "run_rate":
            raise ConfigError(f"algorithm run_rate needs the column(s) {missing}", field="algorithm")
        del grids["run_rate"]
        skipped.append({"algorithm": "run_rate", "skipped": f"needs the column(s) {missing}"})
    if not schema.columns:
        raise DataError("no usable feature columns: every column is an identifier, empty or constant", field="rows")

    train_x, test_x = features.iloc[split.train], features.iloc[split.test]
    folds = _folds(classification, train_y, config)
    scoring = main_metric(classification)
    refit = scoring if classification else "mae"

    candidates: list[dict[str, Any]] = list(skipped)
    searches: dict[str, GridSearchCV] = {}
    search_started_all = time.perf_counter()
    for position, (name, grid) in enumerate(grids.items()):
        elapsed = time.perf_counter() - search_started_all
        baseline = ALGORITHMS[name].needs_transactions  # cheap, and what the others must beat
        if searches and not baseline and config.time_budget_s is not None and elapsed >= config.time_budget_s:
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
            schema, model_type, name, grid, preprocessing, folds, refit, config, train_x, train_y, fit_progress
        )
        seconds = time.perf_counter() - search_started
        row = search.best_index_
        candidate: dict[str, Any] = {
            "algorithm": name,
            "cv_mean": round(float(search.cv_results_[f"mean_test_{scoring}"][row]), 6),
            "cv_std": round(float(search.cv_results_[f"std_test_{scoring}"][row]), 6),
            "best_params": _plain_params(search.best_params_),
            "fits": int(len(search.cv_results_["params"]) * folds.get_n_splits() + 1),
            "seconds": round(seconds, 3),
        }
        if not classification:
            candidate["cv_mae"] = round(-float(search.cv_results_["mean_test_mae"][row]), 6)
            candidate["cv_top_decile_capture"] = round(float(search.cv_results_["mean_test_capture"][row]), 6)
            candidate["cv_spearman"] = round(float(search.cv_results_["mean_test_spearman"][row]), 6)
        candidates.append(candidate)
        searches[name] = search
    timings["search"] = time.perf_counter() - search_started_all
    chosen_algorithm = _choose(candidates, classification)

    # Every candidate's held-out score too (uncalibrated), so the choice by CV can be checked.
    held_out: dict[str, np.ndarray] = {}
    for candidate in candidates:
        if candidate["algorithm"] not in searches:
            continue
        estimator = searches[candidate["algorithm"]].best_estimator_
        if classification:
            candidate["test_roc_auc"] = round(float(get_scorer(scoring)(estimator, test_x, test_y)), 6)
        else:
            predicted = np.clip(estimator.predict(test_x), 0.0, None)
            held_out[candidate["algorithm"]] = predicted
            candidate |= _held_out_value_scores(test_y, predicted)
    selection: dict[str, Any] | None = None
    if not classification:
        selection = _run_rate_check(chosen_algorithm, candidates, held_out, test_y)
        chosen_algorithm = selection["served"]

    search = searches[chosen_algorithm]
    pipeline = search.best_estimator_
    _unwrap(pipeline)
    calibrator = None
    calibration: dict[str, Any] | None = None
    if classification and config.calibrate:
        report_progress("calibrate", 72)
        calibrate_started = time.perf_counter()
        calibrator, calibration = _calibrate(
            pipeline, folds, train_x, train_y, test_x, test_y, config.random_state, config.calibration_methods
        )
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
        mean=round(float(search.cv_results_[f"mean_test_{scoring}"][cv_row]), 6),
        std=round(float(search.cv_results_[f"std_test_{scoring}"][cv_row]), 6),
        folds=folds.get_n_splits(),
    )
    best_params = _plain_params(search.best_params_)
    bundle = ModelBundle(
        model_type=model_type,
        algorithm=chosen_algorithm,
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
        leakage_excluded=tuple(excluded),
    )
    # The parity gate: numpy serves this version only if it reproduces the held-out outputs.
    bundle.serving = bundle.check_compiled(test_x)
    timings["total"] = time.perf_counter() - started
    quality_summary = {key: value for key, value in quality.items() if key != "column_evidence"}
    report = {
        "rows": quality["rows"],
        "labelled_rows": quality["labelled_rows"],
        "split": {
            "method": "hash of each row's id (or values) below test_size, per class",
            "test_size": config.test_size,
            "held_out_share": round(len(test_y) / len(target), 4),
            "key": split.key,
            "threshold": split.threshold,
            "rows_used": {
                "search": "the training rows, in k-fold cross-validation",
                "calibration": "out-of-fold predictions of the training rows (the search's folds)",
                "leakage_probe": (
                    f"{probe.rows} training rows" if probe else "none: no column had leakage evidence to weigh"
                ),
                "test": "the held-out rows: test metrics, the calibration and run-rate checks, promotion",
            },
        },
        "train_rows": int(len(train_y)),
        "test_rows": int(len(test_y)),
        "used_columns": [column.as_dict() for column in schema.columns],
        "dropped_columns": [{"name": d.name, "reason": d.reason} for d in schema.dropped],
        "column_warnings": list(schema.warnings),
        "preprocessing": preprocessing,
        "feature_engineering": pipeline.named_steps["features"].explain(),
        "leakage_excluded": [{"column": name, "reason": reason} for name, reason in excluded.items()],
        "leakage": _leakage_report(evidence, excluded, allowed, probe, importance),
        "calibration": calibration,
        "quality": quality_summary,
        "candidates": candidates,
        "selection": selection,
        "cross_validation": cross_validation.__dict__,
        "timings_seconds": {key: round(value, 3) for key, value in timings.items()},
        "estimator": type(pipeline.named_steps["model"]).__name__,
        "value_confidence": value_confidence.as_dict() if value_confidence is not None else None,
        "serving": bundle.serving.as_dict(),
    }
    return TrainResult(
        bundle=bundle,
        algorithm=chosen_algorithm,
        best_params=best_params,
        cross_validation=cross_validation,
        metrics=metrics,
        feature_importance=tuple(importance),
        explanation_method=method,
        report=report,
        holdout=(raw_features.iloc[split.test], test_y, split.positions[split.test]),
    )


def _leakage_report(
    evidence: list[dict[str, Any]],
    excluded: dict[str, str],
    allowed: set[str],
    probe: LeakageProbe | None,
    importance: list[tuple[str, float]],
) -> dict[str, Any]:
    """Every candidate column's evidence, what was excluded, and what the suspects were worth on CV."""
    served = dict(importance)
    items = []
    for item in evidence:
        name = item["column"]
        row = dict(item)
        row["excluded"] = name in excluded
        row["allowed"] = name in allowed and item["verdict"] == EXCLUDE
        row["model_importance_share"] = served.get(name)
        row["probe_importance_share"] = probe.importance.get(name) if probe else None
        row["drop_cost"] = probe.drop_cost.get(name) if probe else None
        if probe and name in probe.upgraded:
            row["verdict"], row["reason"] = EXCLUDE, probe.upgraded[name]
        items.append(row)
    with_suspects = probe.cv_with_suspects if probe else None
    without = probe.cv_without_suspects if probe else None
    return {
        "excluded": list(excluded),
        "warned": [item["column"] for item in items if item["verdict"] == WARN and not item["excluded"]],
        "allowed": [item["column"] for item in items if item["allowed"]],
        "cv_with_suspects": with_suspects,
        "cv_without_suspects": without,
        "leak_worth": None if with_suspects is None or without is None else round(with_suspects - without, 6),
        "probe": probe.as_dict() if probe else None,
        "evidence": items,
    }


def _held_out_value_scores(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
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


def _run_rate_check(
    chosen: str, candidates: list[dict[str, Any]], held_out: dict[str, np.ndarray], test_y: np.ndarray
) -> dict[str, Any]:
    """Serve the run-rate when the model chosen by CV does not beat it on the held-out customers."""
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


def _unwrap(pipeline: Any) -> None:
    """Serve the plain estimator a search wrapper chose (a Ridge or a Tweedie GLM, not the wrapper)."""
    name, estimator = pipeline.steps[-1]
    pipeline.steps[-1] = (name, served_estimator(estimator))


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
    grid: Grid,
    preprocessing: dict[str, Any],
    folds: KFold | StratifiedKFold,
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
        with _quiet_convergence():
            search.fit(train_x, train_y)
    except ConfigError:
        raise
    except ValueError as error:
        # Bad hyperparameter values (e.g. a negative C) surface here; they are the caller's to fix.
        raise ConfigError(f"training with {algorithm} failed: {error}", field="param_grid") from error
    return search


def _choose(candidates: list[dict[str, Any]], classification: bool) -> str:
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


def _reference_sample(train_x: pd.DataFrame, schema: FeatureSchema, random_state: int) -> pd.DataFrame:
    """Up to REFERENCE_SAMPLE_ROWS training records, the schema's columns only, kept with the version."""
    sample = train_x[list(schema.names)]
    if len(sample) > REFERENCE_SAMPLE_ROWS:
        sample = sample.sample(REFERENCE_SAMPLE_ROWS, random_state=random_state)
    return sample.reset_index(drop=True)


def _calibrate(
    pipeline: Any,
    folds: KFold | StratifiedKFold,
    train_x: pd.DataFrame,
    train_y: np.ndarray,
    test_x: pd.DataFrame,
    test_y: np.ndarray,
    random_state: int,
    methods: tuple[str, ...] = CALIBRATION_METHODS,
) -> tuple[CalibratedClassifierCV | None, dict[str, Any]]:
    """Choose sigmoid, isotonic or no calibration by CV log-loss; never one that costs ranking.

    The chosen pipeline's out-of-fold scores of the training rows (the search's folds) are
    what every calibrator is fitted on, as CalibratedClassifierCV(ensemble=False) does.
    Each method is scored by the log-loss of a second cross-validation over those
    scores; the lowest wins, unless it lowers held-out ROC-AUC by more than
    CALIBRATION_MAX_AUC_LOSS (isotonic steps tie scores apart), then the next one does.
    `pipeline` is already fitted on all training rows; it is the one served and explained.
    """
    response, scores, probabilities = _out_of_fold(pipeline, folds, train_x, train_y)
    inner = StratifiedKFold(n_splits=folds.get_n_splits(), shuffle=True, random_state=random_state + 1)
    unknown = sorted(set(methods) - set(CALIBRATION_METHODS))
    if unknown or not methods:
        raise ConfigError(f"calibration methods must be among {', '.join(CALIBRATION_METHODS)}", field="calibrate")
    cv_log_loss = {
        method: _calibration_log_loss(method, scores, probabilities, train_y, inner) for method in methods
    }
    raw_test = pipeline.predict_proba(test_x)[:, 1]
    raw_auc = _auc(test_y, raw_test)
    test_scores = _response(pipeline, response, test_x)
    rejected: list[str] = []
    held_out: dict[str, dict[str, float | None]] = {}
    chosen, chosen_test = "none", raw_test
    for method in sorted(methods, key=lambda name: cv_log_loss[name]):
        if method == "none":
            break
        calibrated = _fit_calibration(method, scores, train_y).predict(test_scores)
        auc = _auc(test_y, calibrated)
        held_out[method] = {"roc_auc": None if auc is None else round(auc, 6)}
        if raw_auc is not None and auc is not None and raw_auc - auc > CALIBRATION_MAX_AUC_LOSS:
            rejected.append(
                f"{method}: lowers held-out ROC-AUC from {raw_auc:.4f} to {auc:.4f} "
                f"(more than {CALIBRATION_MAX_AUC_LOSS})"
            )
            continue
        chosen, chosen_test = method, calibrated
        break
    calibrator = None if chosen == "none" else _calibrated_classifier(pipeline, chosen, scores, train_y, folds)
    if calibrator is not None:
        chosen_test = calibrator.predict_proba(test_x)[:, 1]
    after_auc = _auc(test_y, chosen_test)
    return calibrator, {
        "method": chosen,
        "chosen_by": (
            "lowest CV log-loss over out-of-fold scores of the training rows, unless it lowers held-out "
            f"ROC-AUC by more than {CALIBRATION_MAX_AUC_LOSS}"
        ),
        "cv_log_loss": {method: round(value, 6) for method, value in cv_log_loss.items()},
        "rejected": rejected,
        "fitted_on": f"out-of-fold predictions of {len(train_y)} training rows ({folds.get_n_splits()} folds)",
        "brier_before": round(float(brier_score_loss(test_y, raw_test)), 6),
        "brier_after": round(float(brier_score_loss(test_y, chosen_test)), 6),
        "log_loss_before": _log_loss(test_y, raw_test),
        "log_loss_after": _log_loss(test_y, chosen_test),
        "roc_auc_before": None if raw_auc is None else round(raw_auc, 6),
        "roc_auc_after": None if after_auc is None else round(after_auc, 6),
    }


def _response(pipeline: Any, response: str, X: pd.DataFrame) -> np.ndarray:
    values = getattr(pipeline, response)(X)
    return np.asarray(values[:, 1] if response == "predict_proba" else values, dtype=float)


def _out_of_fold(
    pipeline: Any, folds: KFold | StratifiedKFold, train_x: pd.DataFrame, train_y: np.ndarray
) -> tuple[str, np.ndarray, np.ndarray]:
    """(response method, out-of-fold scores it gives, out-of-fold probabilities) of the training rows.

    The scores are what CalibratedClassifierCV would calibrate (the decision function when
    the model has one), the probabilities what "no calibration" serves.
    """
    response = "decision_function" if hasattr(pipeline, "decision_function") else "predict_proba"
    scores = np.zeros(len(train_y))
    probabilities = np.zeros(len(train_y))
    with _quiet_convergence():
        for fit_rows, score_rows in folds.split(train_x, train_y):
            fold_model = clone(pipeline).fit(train_x.iloc[fit_rows], train_y[fit_rows])
            part = train_x.iloc[score_rows]
            scores[score_rows] = _response(fold_model, response, part)
            probabilities[score_rows] = fold_model.predict_proba(part)[:, 1]
    return response, scores, probabilities


class _SigmoidCalibration:
    """Platt scaling of scores to probabilities (a one-feature logistic regression)."""

    def __init__(self) -> None:
        self.model = LogisticRegression(C=1e6, max_iter=1000)

    def fit(self, scores: np.ndarray, y: np.ndarray) -> _SigmoidCalibration:
        self.model.fit(scores.reshape(-1, 1), y)
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return expit(self.model.decision_function(np.asarray(scores).reshape(-1, 1)))


def _fit_calibration(method: str, scores: np.ndarray, y: np.ndarray) -> Any:
    """A calibrator of scores, for choosing a method (the served one is sklearn's own)."""
    if method == "isotonic":
        return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, y)
    return _SigmoidCalibration().fit(scores, y)


def _calibration_log_loss(
    method: str, scores: np.ndarray, probabilities: np.ndarray, y: np.ndarray, folds: StratifiedKFold
) -> float:
    if method == "none":
        return float(log_loss(y, np.clip(probabilities, 1e-6, 1 - 1e-6), labels=[0, 1]))
    predicted = np.zeros(len(y))
    for fit_rows, score_rows in folds.split(scores.reshape(-1, 1), y):
        predicted[score_rows] = _fit_calibration(method, scores[fit_rows], y[fit_rows]).predict(scores[score_rows])
    return float(log_loss(y, np.clip(predicted, 1e-6, 1 - 1e-6), labels=[0, 1]))


def _calibrated_classifier(
    pipeline: Any, method: str, scores: np.ndarray, train_y: np.ndarray, folds: KFold | StratifiedKFold
) -> CalibratedClassifierCV:
    """A fitted CalibratedClassifierCV(ensemble=False) around `pipeline`, from the scores already computed.

    Built with scikit-learn's own calibrator fitting (a private helper of the pinned
    version; the calibration tests fail loudly if it changes), so the served object is
    exactly what `CalibratedClassifierCV.fit` makes, without fitting the pipeline k + 1
    more times for out-of-fold scores we already have.
    """
    from sklearn.calibration import _fit_calibrator
    from sklearn.utils._array_api import get_namespace

    classes = np.unique(train_y)
    xp, _ = get_namespace(scores)
    calibrator = CalibratedClassifierCV(clone(pipeline), method=method, cv=folds, ensemble=False)
    calibrator.calibrated_classifiers_ = [
        _fit_calibrator(pipeline, scores.reshape(-1, 1), train_y, classes, method, xp=xp)
    ]
    calibrator.classes_ = classes
    for name in ("n_features_in_", "feature_names_in_"):
        if hasattr(pipeline, name):
            setattr(calibrator, name, getattr(pipeline, name))
    return calibrator


def _auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    return float(roc_auc_score(y, scores)) if len(np.unique(y)) == 2 else None


def _log_loss(y: np.ndarray, probabilities: np.ndarray) -> float:
    return round(float(log_loss(y, np.clip(probabilities, 1e-6, 1 - 1e-6), labels=[0, 1])), 6)


@contextmanager
def _quiet_convergence() -> Iterator[None]:
    """An MLP reaching max_iter is a normal outcome of a bounded search, not a fault."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


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

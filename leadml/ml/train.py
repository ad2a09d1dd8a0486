"""Train one model version: validate, split, judge leakage, search, calibrate, evaluate, explain, package.

`train_model` is what the django-q2 task, the demo set-up and the tests call. It reports
progress through a callback (step name, percent) so the caller can record it and cancel
by raising from inside the callback. `train_model` runs the steps in order, each a
function below; the hyperparameter search is leadml.ml.search, the calibration
leadml.ml.calibrate, the leakage judgement leadml.ml.leakage.

It stays one module past 400 lines: the request checks (`grids_for`,
`check_feature_names`, which the job service also runs before it queues a job) and the
steps that share the run's dataclasses read best beside the function that calls them.

Which rows do what: the held-out rows (leadml.ml.split, `test_size`) are never trained
on; leakage evidence, the leakage probe, the hyperparameter search (k-fold CV) and the
calibration (out-of-fold scores in the search's folds) all read the training rows. The
held-out rows give the test metrics and decide only two guards: a calibrator that costs
ROC-AUC is not used, and a lifetime-value model that does not beat the run-rate is not
served.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import GridSearchCV

from leadml.ml.bundle import REFERENCE_SAMPLE_ROWS, ModelBundle
from leadml.ml.calibrate import calibrate
from leadml.ml.confidence import ValueConfidence, value_confidence_fit
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
from leadml.ml.features import FeatureEngineer, replace_placeholders
from leadml.ml.leakage import LeakageProbe, LeakageVerdict, judge_leakage, leakage_report
from leadml.ml.pipeline import (
    ALGORITHMS,
    AUTO,
    BTYD_NEEDS_TRANSACTIONS,
    BTYD_SWITCHED_OFF,
    RUN_RATE_INPUTS,
    Grid,
    algorithms_for,
    default_grid,
    make_estimator,
    resolve_preprocessing,
    served_estimator,
    without_heavy_tail,
)
from leadml.ml.quality import MAX_PLAUSIBLE_NUMBER, implausible_numbers_blanked, quality_report
from leadml.ml.reasons import typical_record
from leadml.ml.schema import infer_schema
from leadml.ml.search import (
    Folds,
    ProgressCallback,
    choose_algorithm,
    folds_for,
    plain_params,
    run_rate_check,
    score_held_out,
    search_candidates,
)
from leadml.ml.split import HoldoutSplit, holdout_split
from leadml.ml.targets import check_trainable
from leadml.ml.transactions import FEATURE_COLUMNS as TRANSACTION_FEATURES
from leadml.ml.types import (
    CrossValidation,
    DroppedColumn,
    FeatureSchema,
    TrainingConfig,
    TrainResult,
    is_classification,
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


@dataclass
class _Run:
    """One training request as its steps read it: the model, the config, progress and step timings."""

    model_type: str
    algorithm: str
    config: TrainingConfig
    report_progress: ProgressCallback
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @property
    def classification(self) -> bool:
        return is_classification(self.model_type)

    @property
    def scoring(self) -> str:
        return main_metric(self.classification)

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.timings[step] = time.perf_counter() - started


@dataclass(frozen=True)
class _Prepared:
    """The validated request: its labelled rows, as sent and as trained on."""

    preprocessing: dict[str, Any]
    raw_features: pd.DataFrame  # every column as sent, for comparing with the active model
    features: pd.DataFrame  # the requested columns, placeholders read as missing
    target: np.ndarray
    quality: dict[str, Any]
    trusted: set[str]  # columns that cannot leak (a customer table built from a transaction log)
    chosen: set[str]  # the tenant's explicit choices win over inference,
    allowed: set[str]  # and `allow_columns` also over leakage


@dataclass(frozen=True)
class _Rows:
    """The training and the held-out rows of the split."""

    train_x: pd.DataFrame
    train_y: np.ndarray
    test_x: pd.DataFrame
    test_y: np.ndarray


@dataclass(frozen=True)
class _Served:
    """The chosen model as served: refitted on the training rows, calibrated, evaluated and explained."""

    algorithm: str
    search: GridSearchCV
    pipeline: Any
    calibrator: CalibratedClassifierCV | None
    calibration: dict[str, Any] | None
    predictions: np.ndarray  # the served output on the held-out rows
    metrics: dict[str, Any]
    value_confidence: ValueConfidence | None
    importance: list[tuple[str, float]]
    explanation_method: str
    cross_validation: CrossValidation


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
    run = _Run(model_type, algorithm, config or TrainingConfig(), progress or _no_progress)
    run.report_progress("validate", 5)
    prepared = _prepare(features, labels, run, min_rows=min_rows, min_rows_per_class=min_rows_per_class)
    run.timings["validate"] = time.perf_counter() - run.started

    run.report_progress("split", 10)
    split = holdout_split(
        prepared.raw_features, prepared.target, test_size=run.config.test_size, classification=run.classification,
        salt=run.config.random_state,
    )
    rows = _Rows(
        prepared.features.iloc[split.train], prepared.target[split.train],
        prepared.features.iloc[split.test], prepared.target[split.test],
    )
    with run.timed("leakage"):
        leakage = _judge_leakage(prepared, split, run)
    schema = _final_schema(prepared, leakage.excluded)
    grids, skipped = _candidate_grids(schema, prepared.target, run)

    folds = folds_for(run.classification, rows.train_y, run.config)
    with run.timed("search"):
        searched, searches = search_candidates(
            grids, schema=schema, model_type=model_type, preprocessing=prepared.preprocessing, folds=folds,
            config=run.config, train_x=rows.train_x, train_y=rows.train_y, report_progress=run.report_progress,
        )
    candidates = [*skipped, *searched]
    chosen, selection = _served_algorithm(candidates, searches, rows, run.classification)
    served = _serve(chosen, searches[chosen], folds, rows, run)

    run.report_progress("package", 95)
    bundle = _package(served, schema, split, rows, leakage, run)
    run.timings["total"] = time.perf_counter() - run.started
    report = _report(run, prepared, split, rows, leakage, schema, served, candidates, selection, bundle)
    return TrainResult(
        bundle=bundle,
        algorithm=chosen,
        best_params=plain_params(served.search.best_params_),
        cross_validation=served.cross_validation,
        metrics=served.metrics,
        feature_importance=tuple(served.importance),
        explanation_method=served.explanation_method,
        report=report,
        holdout=(prepared.raw_features.iloc[split.test], rows.test_y, split.positions[split.test]),
    )


def _prepare(
    features: pd.DataFrame, labels: pd.Series, run: _Run, *, min_rows: int, min_rows_per_class: int
) -> _Prepared:
    """Refuse a bad request before reading data, then keep the labelled rows of the requested columns."""
    config = run.config
    preprocessing = resolve_preprocessing(config.preprocessing)
    grids_for(run.model_type, run.algorithm, config.param_grid)
    # Every column as sent, for comparing with the active model (which may read others).
    # Typos like 1e300 are missing values, for both (the quality report names them).
    raw_features, implausible = implausible_numbers_blanked(features.reset_index(drop=True))
    features = select_features(raw_features, config.features)
    labels = labels.reset_index(drop=True).astype(float)
    # A target like 1e300 (a lifetime value's typo) would overflow every metric: unlabelled.
    implausible_labels = int((labels.abs() > MAX_PLAUSIBLE_NUMBER).sum())
    labels = labels.mask(labels.abs() > MAX_PLAUSIBLE_NUMBER)
    check_trainable(labels, model_type=run.model_type, min_rows=min_rows, min_rows_per_class=min_rows_per_class)
    features = replace_placeholders(features, config.feature_options.missing_values)
    # A customer table the service built from a transaction log holds only what happened
    # on or before the cut-off: those columns cannot leak, however well they predict.
    built = config.feature_options.btyd_horizon_days is not None and set(TRANSACTION_FEATURES) <= set(features.columns)
    trusted = set(TRANSACTION_FEATURES) if built else set()
    selected = set(map(str, features.columns))
    kept = [warning for name, warning in implausible.items() if name in selected]
    quality = quality_report(features, labels, model_type=run.model_type, trusted=trusted, implausible=kept)
    if implausible_labels:
        quality["column_warnings"].append(
            f"target: {implausible_labels} value(s) beyond ±{MAX_PLAUSIBLE_NUMBER:g} left out as unlabelled"
        )
    labelled = labels.notna().to_numpy()
    target = labels[labelled].to_numpy()
    return _Prepared(
        preprocessing=preprocessing,
        raw_features=raw_features[labelled].reset_index(drop=True),
        features=features[labelled].reset_index(drop=True),
        target=target.astype(int) if run.classification else target,
        quality=quality,
        trusted=trusted,
        chosen=set(config.features or ()),
        allowed=set(config.allow_columns),
    )


def _judge_leakage(prepared: _Prepared, split: HoldoutSplit, run: _Run) -> LeakageVerdict:
    """Leakage is judged on the training rows only, so held-out rows stay unseen by every choice."""
    return judge_leakage(
        prepared.features.iloc[split.train].reset_index(drop=True),
        prepared.target[split.train],
        model_type=run.model_type,
        keep=prepared.chosen,
        allowed=prepared.allowed,
        trusted=prepared.trusted,
        feature_options=run.config.feature_options,
        random_state=run.config.random_state,
        progress=run.report_progress,
    )


def _final_schema(prepared: _Prepared, excluded: dict[str, str]) -> FeatureSchema:
    """The columns the model reads: inferred without the leakage suspects, which are listed as dropped."""
    schema = infer_schema(prepared.features.drop(columns=list(excluded)), keep=prepared.chosen | prepared.allowed)
    schema_warnings = list(schema.warnings)
    schema_warnings += [
        f"{name}: named in features, but excluded as a leakage suspect; add it to allow_columns to keep it"
        for name in excluded
        if name in prepared.chosen
    ]
    return FeatureSchema(
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


def _candidate_grids(
    schema: FeatureSchema, target: np.ndarray, run: _Run
) -> tuple[dict[str, Grid], list[dict[str, Any]]]:
    """({algorithm: grid} to search on this data, the report rows of the candidates it cannot train)."""
    algorithm = run.algorithm
    engineer = FeatureEngineer(schema, run.config.feature_options).fit(None)
    grids = grids_for(run.model_type, algorithm, run.config.param_grid, transactions=engineer.from_transactions)
    if not run.classification and float(np.min(target)) < 0:
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
    return grids, skipped


def _served_algorithm(
    candidates: list[dict[str, Any]], searches: dict[str, GridSearchCV], rows: _Rows, classification: bool
) -> tuple[str, dict[str, Any] | None]:
    """The algorithm chosen by CV; for lifetime value the run-rate when the choice does not beat it held out."""
    chosen = choose_algorithm(candidates, classification)
    score_held_out(candidates, searches, rows.test_x, rows.test_y, classification=classification)
    if classification:
        return chosen, None
    selection = run_rate_check(chosen, candidates)
    return selection["served"], selection


def _serve(algorithm: str, search: GridSearchCV, folds: Folds, rows: _Rows, run: _Run) -> _Served:
    """Calibrate (leads), evaluate and explain the chosen search's refitted pipeline."""
    pipeline = search.best_estimator_
    # Serve the plain estimator a search wrapper chose (a Ridge or a Tweedie GLM, not the wrapper).
    name, estimator = pipeline.steps[-1]
    pipeline.steps[-1] = (name, served_estimator(estimator))
    calibrator: CalibratedClassifierCV | None = None
    calibration: dict[str, Any] | None = None
    if run.classification and run.config.calibrate:
        run.report_progress("calibrate", 72)
        with run.timed("calibrate"):
            calibrator, calibration = calibrate(
                pipeline, folds, rows.train_x, rows.train_y, rows.test_x, rows.test_y, run.config.random_state,
                run.config.calibration_methods,
            )
    run.report_progress("evaluate", 80)
    with run.timed("evaluate"):
        predictions, metrics, value_confidence = _evaluate(pipeline, calibrator, calibration, rows, run)
    run.report_progress("explain", 90)
    with run.timed("explain"):
        importance, method = feature_importance(
            pipeline, rows.test_x, rows.test_y, scoring=run.scoring, random_state=run.config.random_state
        )
    return _Served(
        algorithm, search, pipeline, calibrator, calibration, predictions, metrics, value_confidence, importance, method,
        _cross_validation(search, run.scoring, folds),
    )


def _evaluate(
    pipeline: Any,
    calibrator: CalibratedClassifierCV | None,
    calibration: dict[str, Any] | None,
    rows: _Rows,
    run: _Run,
) -> tuple[np.ndarray, dict[str, Any], ValueConfidence | None]:
    """Held-out (predictions, metrics and charts, value confidence) of the served output."""
    test_y = rows.test_y
    if run.classification:
        scorer = calibrator if calibrator is not None else pipeline
        predictions = scorer.predict_proba(rows.test_x)[:, 1]
        metrics = classification_metrics(test_y, predictions)
        metrics["calibration_curve"] = calibration_curve_points(test_y, predictions)
        metrics["roc_curve"] = roc_curve_points(test_y, predictions)
        metrics["score_histogram"] = score_histogram(predictions, unit_range=True)
        if calibration is not None:
            metrics["brier_uncalibrated"] = calibration["brier_before"]
        return predictions, metrics, None
    predictions = np.clip(pipeline.predict(rows.test_x), 0.0, None)
    metrics = regression_metrics(test_y, predictions)
    metrics["predicted_vs_actual"] = prediction_pairs(test_y, predictions, seed=run.config.random_state)
    metrics["score_histogram"] = score_histogram(predictions)
    return predictions, metrics, value_confidence_fit(predictions, test_y)


def _cross_validation(search: GridSearchCV, scoring: str, folds: Folds) -> CrossValidation:
    row = search.best_index_
    return CrossValidation(
        metric=scoring,
        mean=round(float(search.cv_results_[f"mean_test_{scoring}"][row]), 6),
        std=round(float(search.cv_results_[f"std_test_{scoring}"][row]), 6),
        folds=folds.get_n_splits(),
    )


def _package(
    served: _Served, schema: FeatureSchema, split: HoldoutSplit, rows: _Rows, leakage: LeakageVerdict, run: _Run
) -> ModelBundle:
    """The version's bundle, and the parity gate: numpy serves it only if it reproduces the held-out outputs."""
    bundle = ModelBundle(
        model_type=run.model_type,
        algorithm=served.algorithm,
        pipeline=served.pipeline,
        calibrator=served.calibrator,
        schema=schema,
        trained_at=datetime.now(timezone.utc).isoformat(),
        feature_importance=served.importance,
        explanation_method=served.explanation_method,
        metrics=served.metrics,
        score_quantiles=[float(value) for value in np.percentile(served.predictions, np.arange(101))],
        holdout_threshold=split.threshold,
        holdout_key=split.key,
        baseline_record=typical_record(schema, rows.train_x),
        reference_sample=_reference_sample(rows.train_x, schema, run.config.random_state),
        value_confidence=served.value_confidence,
        leakage_excluded=tuple(leakage.excluded),
    )
    bundle.serving = bundle.check_compiled(rows.test_x)
    return bundle


def _report(
    run: _Run,
    prepared: _Prepared,
    split: HoldoutSplit,
    rows: _Rows,
    leakage: LeakageVerdict,
    schema: FeatureSchema,
    served: _Served,
    candidates: list[dict[str, Any]],
    selection: dict[str, Any] | None,
    bundle: ModelBundle,
) -> dict[str, Any]:
    """The training report kept with the version."""
    quality, pipeline = prepared.quality, served.pipeline
    excluded = leakage.excluded
    value_confidence = served.value_confidence
    return {
        "rows": quality["rows"],
        "labelled_rows": quality["labelled_rows"],
        "split": _split_report(split, rows, len(prepared.target), leakage.probe, run.config),
        "train_rows": int(len(rows.train_y)),
        "test_rows": int(len(rows.test_y)),
        "used_columns": [column.as_dict() for column in schema.columns],
        "dropped_columns": [{"name": d.name, "reason": d.reason} for d in schema.dropped],
        "column_warnings": list(schema.warnings),
        "preprocessing": prepared.preprocessing,
        "feature_engineering": pipeline.named_steps["features"].explain(),
        "leakage_excluded": [{"column": name, "reason": reason} for name, reason in excluded.items()],
        "leakage": leakage_report(leakage, prepared.allowed, served.importance),
        "calibration": served.calibration,
        "quality": {key: value for key, value in quality.items() if key != "column_evidence"},
        "candidates": candidates,
        "selection": selection,
        "cross_validation": served.cross_validation.__dict__,
        "timings_seconds": {key: round(value, 3) for key, value in run.timings.items()},
        "estimator": type(pipeline.named_steps["model"]).__name__,
        "value_confidence": value_confidence.as_dict() if value_confidence is not None else None,
        "serving": bundle.serving.as_dict() if bundle.serving is not None else None,
    }


def _split_report(
    split: HoldoutSplit, rows: _Rows, labelled: int, probe: LeakageProbe | None, config: TrainingConfig
) -> dict[str, Any]:
    return {
        "method": "hash of each row's id (or values) below test_size, per class",
        "test_size": config.test_size,
        "held_out_share": round(len(rows.test_y) / labelled, 4),
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
    }


def _reference_sample(train_x: pd.DataFrame, schema: FeatureSchema, random_state: int) -> pd.DataFrame:
    """Up to REFERENCE_SAMPLE_ROWS training records, the schema's columns only, kept with the version."""
    sample = train_x[list(schema.names)]
    if len(sample) > REFERENCE_SAMPLE_ROWS:
        sample = sample.sample(REFERENCE_SAMPLE_ROWS, random_state=random_state)
    return sample.reset_index(drop=True)

"""Measure what scoring through leadml costs: over the bare fitted pipeline, and over the HTTP floor.

`run_bench` trains a lead model for a dedicated tenant with the service's own training
job, then times the same records three ways: the served scikit-learn scorer alone and
the scoring service (validation and storing every prediction), both here, and the HTTP
API under `manage.py serve` (bench/scoring_http.py). Over HTTP, `/predict` is compared
with the bench floor (bench/floor.py): a constant answer behind the same server,
middleware, token check and throttle, so the ratios say what scoring adds to any request
on this machine in this run (README, "Benchmark"; the targets in bench/targets.py). A
target that is missed gets a quick in-process cProfile of what it measures, to say where
the time goes (bench/profiling.py).

It returns the figures as one JSON-ready dict; `report_lines` (bench/report.py) turns
them into the text the `bench` management command prints. The bench tenant's data is
deleted at the start of each run, so reruns start clean.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from django.conf import settings
from django.utils import timezone

from bench.common import (
    ALGORITHM,
    active_bundle,
    bench_model_train,
    bench_tenant_reset,
    json_records,
    latency_summary,
    machine_info,
    prediction_count,
    runs_summary,
    time_calls,
)
from bench.budget import bench_budget
from bench.profiling import where_the_time_goes
from bench.scoring_http import bench_http
from bench.server import ServeFailed
from bench.targets import targets_check
from bench.types import BenchConfig, BenchData, BenchError
from demo.data import generate_leads
from leadml.ml.bundle import ModelBundle
from leadml.ml.types import LEAD_CONVERSION
from predictions.services import predictions_make

BANK_CSV = Path("bank_marketing_additional") / "bank-additional-full.csv"
DATASETS_DIR_ENV = "LEADML_DATASETS_DIR"


# --- Data ------------------------------------------------------------------------


def datasets_dir() -> Path:
    """Where the shared public datasets live: $LEADML_DATASETS_DIR, else ../shared/datasets."""
    override = os.environ.get(DATASETS_DIR_ENV)
    return Path(override) if override else Path(settings.BASE_DIR).parent / "shared" / "datasets"


def bench_data_load(config: BenchConfig) -> BenchData:
    if config.dataset == "demo":
        return _demo_data(config)
    if config.dataset == "bank":
        return _bank_data(config)
    raise BenchError(f"unknown dataset {config.dataset!r}; choose demo or bank")


def _demo_data(config: BenchConfig) -> BenchData:
    training = generate_leads(config.rows, seed=config.seed)
    scored = generate_leads(config.batch_rows, seed=config.seed + 1).drop(columns=["status"])
    return BenchData("demo leads", "status", ["customer", "won"], json_records(training), json_records(scored))


def _bank_data(config: BenchConfig) -> BenchData:
    path = datasets_dir() / BANK_CSV
    if not path.exists():
        raise BenchError(
            f"bank marketing dataset not found at {path}; set {DATASETS_DIR_ENV} to the folder holding "
            f"{BANK_CSV} or use --dataset demo"
        )
    frame = pd.read_csv(path, sep=";")
    training = frame.sample(n=min(config.rows, len(frame)), random_state=config.seed)
    scored = frame.sample(n=min(config.batch_rows, len(frame)), random_state=config.seed + 1).drop(columns=["y"])
    return BenchData("bank marketing", "y", ["yes"], json_records(training), json_records(scored))


def served_scorer(bundle: ModelBundle) -> Any:
    """The estimator whose probabilities the service returns (calibrated when there is one)."""
    return bundle.calibrator if bundle.calibrator is not None else bundle.pipeline


# --- Bare pipeline and scoring service ------------------------------------------


def _cycled(items: Sequence[Any], count: int) -> list[Any]:
    return [items[index % len(items)] for index in range(count)]


def bench_bare(*, bundle: ModelBundle, records: Sequence[Mapping[str, Any]], config: BenchConfig) -> dict[str, Any]:
    """Time the served scorer's `predict_proba` on ready DataFrames: 1 row, then the batch."""
    scorer = served_scorer(bundle)
    columns = list(bundle.schema.names)
    single_frames = [
        pd.DataFrame.from_records([record], columns=columns) for record in records[: min(config.repeat, len(records))]
    ]
    batch_frame = pd.DataFrame.from_records(list(records), columns=columns)
    scorer.predict_proba(batch_frame)  # warm-up
    single = time_calls(scorer.predict_proba, _cycled(single_frames, config.repeat))
    batch = time_calls(scorer.predict_proba, [batch_frame] * config.batch_runs)
    return {"single": latency_summary(single), "batch": runs_summary(batch), "batch_rows": len(records)}


def bench_service(*, tenant: str, records: Sequence[dict[str, Any]], config: BenchConfig) -> dict[str, Any]:
    """Time `predictions_make` on the same records and check every answer was stored."""
    started_at = timezone.now()
    answered = 0

    def score(batch_records: Sequence[dict[str, Any]], **options: Any) -> None:
        nonlocal answered
        result = predictions_make(tenant=tenant, model_type=LEAD_CONVERSION, records=list(batch_records), **options)
        answered += len(result.outputs)

    score([records[0]])  # warm-up: database connection, model cache
    # A single record is explained by default (what /predict answers), a batch is not.
    single = time_calls(lambda record: score([record]), _cycled(records, config.repeat))
    unexplained = time_calls(lambda record: score([record], explain=False), _cycled(records, config.repeat))
    batch = time_calls(lambda batch_records: score(batch_records, batch=True), [records] * config.batch_runs)
    explained = time_calls(lambda batch_records: score(batch_records, batch=True, explain=True), [records])
    figures: dict[str, Any] = {
        "single": latency_summary(single),
        "single_unexplained": latency_summary(unexplained),
        "batch": runs_summary(batch),
        "batch_explain": runs_summary(explained),
        "batch_rows": len(records),
    }
    stored = prediction_count(tenant=tenant, since=started_at)
    figures["stored"], figures["answered"] = stored, answered
    return figures


# --- The whole run -------------------------------------------------------------


def run_bench(config: BenchConfig, *, log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Train the bench model, measure bare / service / HTTP scoring and return every figure."""
    if config.batch_rows > settings.LEADML_MAX_BATCH_ROWS:
        raise BenchError(
            f"--batch-rows {config.batch_rows} exceeds LEADML_MAX_BATCH_ROWS={settings.LEADML_MAX_BATCH_ROWS}"
        )
    figures: dict[str, Any] = {"config": asdict(config), "machine": machine_info()}
    log(f"Loading {config.dataset} data ({config.rows:,} training rows) ...")
    data = bench_data_load(config)
    log(f"Resetting tenant '{config.tenant}' ...")
    figures["reset"] = bench_tenant_reset(tenant=config.tenant)
    log(f"Training {ALGORITHM} on {len(data.training_rows):,} rows ...")
    _, seconds = bench_model_train(tenant=config.tenant, data=data)
    # Loaded the way the service loads it (the registry's cache), not from the training result.
    version, bundle = active_bundle(tenant=config.tenant)
    metric, value = version.main_metric
    figures["model"] = {
        "name": version.name, "version": version.version, "algorithm": version.algorithm,
        "trained_rows": version.trained_rows, metric: value, "calibrated": bundle.calibrator is not None,
        **{key: round(amount, 1) for key, amount in seconds.items()},
    }
    log("Timing the bare pipeline ...")
    figures["bare"] = bench_bare(bundle=bundle, records=data.records, config=config)
    log("Timing the scoring service ...")
    figures["service"] = bench_service(tenant=config.tenant, records=data.records, config=config)
    if not config.skip_http:
        log(f"Timing HTTP ({config.duration:g} s per side of each comparison) ...")
        try:
            figures["http"] = bench_http(tenant=config.tenant, records=data.records, config=config)
        except ServeFailed as error:
            raise BenchError(str(error)) from error
    log("Measuring what the targets leave ...")
    figures["budget"] = bench_budget(figures, tenant=config.tenant, bundle=bundle, record=data.records[0])
    checks = targets_check(figures)
    figures["targets"] = [asdict(check) | {"verdict": check.verdict} for check in checks]
    if any(check.passed is False for check in checks):
        log("Profiling what the missed targets measure ...")
        figures["where_the_time_goes"] = where_the_time_goes(
            figures, checks, tenant=config.tenant, records=data.records
        )
    return figures

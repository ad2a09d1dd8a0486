"""What both benches share: the bench tenant and its model, the machine, timing summaries.

`manage.py bench` (bench/scoring.py and its parts) and `manage.py bench_monitoring`
(bench/monitoring.py) train the same small lead model for a tenant of their own, the way
`demo_setup` does, and describe the machine and summarise latencies the same way.
"""
from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from django.db import connection

from bench.types import BENCH_TENANT, BenchData, BenchError
from leadml.ml.bundle import ModelBundle
from leadml.ml.types import LEAD_CONVERSION
from predictions.models import Prediction
from registry.cache import bundle_load
from registry.models import ModelVersion
from registry.selectors import model_version_get_active
from training.models import TrainingJob
from training.services.datasets import dataset_create
from training.config import job_config_parse
from training.services.run import training_job_run_now
from monitoring.services.tenants import tenant_delete

MODEL_NAME = "bench_lead_model"
ALGORITHM = "gradient_boosting"
# One grid point and two folds: the bench measures scoring, so training should be quick.
TRAINING_CONFIG: dict[str, Any] = {
    "param_grid": {"learning_rate": [0.1], "max_leaf_nodes": [31]},
    "cv_folds": 2,
}


# --- Environment ---------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Return the CPU model, core count, RAM, date and library versions."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "database": database_info(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def database_info() -> dict[str, str]:
    connection.ensure_connection()
    try:
        version = ".".join(str(part) for part in connection.get_database_version())
    except Exception:  # a backend without a version query: the vendor alone still says a lot
        version = "unknown"
    return {"vendor": connection.vendor, "version": version}


# --- The tenant and its model ---------------------------------------------------


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    # Through JSON, as a CRM would send them: NaN becomes null, numpy scalars plain numbers.
    return json.loads(frame.to_json(orient="records"))


def bench_tenant_check(tenant: str) -> None:
    if not tenant.startswith(BENCH_TENANT):
        # Everything the tenant owns is deleted: never let a typo aim that at a real tenant.
        raise BenchError(f"the bench tenant must start with '{BENCH_TENANT}', not {tenant!r}")


def bench_tenant_reset(*, tenant: str) -> dict[str, int]:
    """Delete everything the bench tenant has (models, data, predictions, outcomes) and revoke its tokens."""
    bench_tenant_check(tenant)
    return tenant_delete(tenant=tenant)


def bench_model_train(*, tenant: str, data: BenchData) -> tuple[ModelVersion, dict[str, float]]:
    """Upload the training rows and train the bench model inline, as `demo_setup` does."""
    started = time.perf_counter()
    dataset = dataset_create(
        tenant=tenant,
        model_type=LEAD_CONVERSION,
        name=data.name,
        target=data.target,
        rows=data.training_rows,
        positive_values=data.positive_values,
    )
    uploaded = time.perf_counter()
    job = training_job_run_now(
        tenant=tenant,
        model_type=LEAD_CONVERSION,
        algorithm=ALGORITHM,
        model_name=MODEL_NAME,
        training_config=job_config_parse({"dataset_id": str(dataset.id), **TRAINING_CONFIG}),
        requested_by="bench",
    )
    if job.status != TrainingJob.Status.SUCCEEDED or job.model_version is None:
        raise BenchError(f"training the bench model {job.status}: {job.error}")
    seconds = {"upload_s": uploaded - started, "train_s": time.perf_counter() - uploaded}
    return job.model_version, seconds


def active_bundle(*, tenant: str) -> tuple[ModelVersion, ModelBundle]:
    """Return the tenant's active lead model and its bundle, loaded as the service loads it."""
    version = model_version_get_active(tenant=tenant, model_type=LEAD_CONVERSION)
    if version is None:
        raise BenchError(f"tenant {tenant!r} has no active {LEAD_CONVERSION} model")
    return version, bundle_load(version)


# --- Timing helpers -------------------------------------------------------------


def time_calls(call: Callable[[Any], Any], arguments: Sequence[Any]) -> list[float]:
    """Call `call` once per argument and return each call's wall time in seconds."""
    durations = []
    for argument in arguments:
        started = time.perf_counter()
        call(argument)
        durations.append(time.perf_counter() - started)
    return durations


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    milliseconds = np.asarray(seconds, dtype=float) * 1000.0
    if milliseconds.size == 0:
        nan = float("nan")
        return {"n": 0, "p50_ms": nan, "p99_ms": nan, "max_ms": nan, "mean_ms": nan}
    return {
        "n": int(milliseconds.size),
        "p50_ms": round(float(np.percentile(milliseconds, 50)), 3),
        "p99_ms": round(float(np.percentile(milliseconds, 99)), 3),
        "max_ms": round(float(milliseconds.max()), 3),
        "mean_ms": round(float(milliseconds.mean()), 3),
    }


def runs_summary(seconds: Sequence[float]) -> dict[str, Any]:
    return {
        "runs": len(seconds),
        "median_ms": round(float(np.median(seconds)) * 1000.0, 1),
        "min_ms": round(min(seconds) * 1000.0, 1),
    }


def prediction_count(*, tenant: str, since: datetime | None = None) -> int:
    predictions = Prediction.objects.filter(tenant=tenant)
    if since is not None:
        predictions = predictions.filter(created_at__gte=since)
    return predictions.count()


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("inf")

"""What the benches are asked to do and the data they train on: plain frozen dataclasses.

`BenchConfig` is `manage.py bench`'s (bench/scoring.py), `MonitoringBenchConfig`
`manage.py bench_monitoring`'s (bench/monitoring.py). Every bench tenant's name starts
with `BENCH_TENANT`, since a bench deletes what its tenant owns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BENCH_TENANT = "bench"
MONITORING_TENANT = "bench-monitoring"


class BenchError(Exception):
    """The bench cannot run as asked (missing dataset, failed training, server down)."""


@dataclass(frozen=True)
class BenchConfig:
    rows: int = 50_000  # training rows
    dataset: str = "demo"  # "demo" (synthetic leads) or "bank" (UCI bank marketing)
    batch_rows: int = 10_000  # records per batch call
    repeat: int = 300  # single-record calls timed per measurement
    batch_runs: int = 5  # batch calls timed per measurement (median reported)
    duration: float = 10.0  # seconds per HTTP load phase, on each side of a comparison
    clients: tuple[int, ...] = (1, 8)
    skip_http: bool = False
    access_log_check: bool = True  # the floor at the most clients, access log on against off
    workers: int | None = None  # gunicorn workers (None: settings.WORKERS)
    tenant: str = BENCH_TENANT
    seed: int = 42


@dataclass(frozen=True)
class MonitoringBenchConfig:
    predictions: int = 1_000_000  # stored predictions of the bench model
    outcomes: int = 20_000  # scored leads that get an outcome
    training_rows: int = 10_000
    chunk_rows: int = 50_000  # predictions generated, scored and inserted at a time
    days: int = 30  # the predictions' created_at spans this many days before now
    repeat: int = 5  # timed calls per window and path, after one warm-up call
    tenant: str = MONITORING_TENANT
    fresh: bool = False  # rebuild the data even when the counts match
    seed: int = 42


@dataclass(frozen=True)
class BenchData:
    """Training rows (target included) and the records scored (target removed)."""

    name: str
    target: str
    positive_values: list[str]
    training_rows: list[dict[str, Any]]
    records: list[dict[str, Any]]

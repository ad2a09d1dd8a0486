"""What the targets leave: the least work a stored answer needs, measured in the same run as the targets.

A target of `manage.py bench` that stays missed is either work still to remove or work
the product cannot skip. This module measures the second kind on its own, so that the
report can say which (README, "Benchmark"):

- `/predict` at 8 clients saturates the machine's cores. Its throughput over the floor's
  is then about the floor's CPU per answer (gunicorn workers + PostgreSQL + the load
  clients, all on the same cores) over /predict's. Whatever /predict does beyond the
  floor must therefore cost at most floor × (1 / share − 1). Two parts of it are
  measured alone here: storing one prediction row as /predict stores it, and scoring one
  record with its reasons (validation, model input, score, exact Shapley values). The
  floor's CPU plus those two gives the highest share any /predict could reach.
- A batch is stored before it is answered, in one transaction on one database
  connection, so the database's own work on those rows cannot overlap itself. Storing
  the rows of one batch alone gives the least time any batch can take.

Storage is measured inside a transaction that is rolled back: nothing is left behind,
and the commits (real work too) are not counted, so the bounds are generous.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from bench.targets import TARGET_CLIENTS, TARGET_THROUGHPUT_SHARE
from leadml.ml.bundle import ModelBundle
from leadml.ml.reasons import explainer_for
from predictions.models import Prediction
from predictions.prediction_log import PredictionBatch, predictions_insert

# Single-row inserts and single-record scorings timed for the /predict budget.
BUDGET_CALLS = 400


def backend_cpu_seconds() -> float | None:
    """CPU time the PostgreSQL backend of this connection has used, or None if it cannot be read.

    Only for a server on this machine: its process is read in /proc (schedstat, in
    nanoseconds; stat's clock ticks are too coarse for a few hundred inserts).
    """
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        return int((Path("/proc") / str(pid) / "schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def _stored_batch(predictions: list[Prediction]) -> PredictionBatch:
    """The rows of stored predictions, to be stored again as one scoring request would store them."""
    first = predictions[0]
    return PredictionBatch(
        tenant=first.tenant, model_type=first.model_type, model_version_id=first.model_version_id,
        batch_id=first.batch_id, source=first.source, latency_ms=first.latency_ms, created_at=timezone.now(),
        entity_ids=[prediction.entity_id for prediction in predictions],
        inputs=[prediction.input for prediction in predictions],
        outputs=[prediction.output for prediction in predictions],
        values=[prediction.value for prediction in predictions],
    )


@dataclass(frozen=True)
class Storing:
    """What storing some batches took: wall time, this process's CPU, the database's (None: unreadable)."""

    wall_s: float
    process_cpu_s: float
    database_cpu_s: float | None


def _storing(batches: list[PredictionBatch]) -> Storing:
    """Store each batch, all in one transaction rolled back at the end."""
    database_before = backend_cpu_seconds()
    with transaction.atomic():
        cpu_before, wall_before = time.thread_time(), time.perf_counter()
        for batch in batches:
            predictions_insert(batch)
        cpu, wall = time.thread_time() - cpu_before, time.perf_counter() - wall_before
        database_after = backend_cpu_seconds()
        transaction.set_rollback(True)
    database = None if database_before is None or database_after is None else database_after - database_before
    return Storing(wall_s=wall, process_cpu_s=cpu, database_cpu_s=database)


def predict_budget(
    http_figures: Mapping[str, Any], *, tenant: str, bundle: ModelBundle, record: Mapping[str, Any], share: float,
    clients: int,
) -> dict[str, Any] | None:
    """The floor's CPU per answer at `clients`, what `share` leaves for /predict, and its two unskippable parts."""
    floors = [load for load in http_figures["loads"] if load["label"] == "floor" and load["clients"] == clients]
    template = Prediction.objects.filter(tenant=tenant, batch_id__isnull=True).order_by("-id").first()
    if not floors or template is None or floors[0]["database_cpu_ms"] is None:
        return None  # no floor at that many clients, nothing stored yet, or a database we cannot watch
    floor = floors[0]
    floor_ms = floor["worker_cpu_ms"] + floor["database_cpu_ms"] + floor["client_cpu_ms"]
    stored = _storing([_stored_batch([template]) for _ in range(BUDGET_CALLS)])
    explainer = explainer_for(bundle)
    started = time.thread_time()
    for _ in range(BUDGET_CALLS):
        inputs = bundle.model_input(bundle.prepare([record]))
        if explainer is not None:
            explainer.score_and_explain(inputs)
        else:
            bundle.predict_matrix(inputs)
    score_ms = 1000 * (time.thread_time() - started) / BUDGET_CALLS
    store_ms = 1000 * stored.process_cpu_s / BUDGET_CALLS
    store_database_ms = 0.0 if stored.database_cpu_s is None else 1000 * stored.database_cpu_s / BUDGET_CALLS
    least_ms = floor_ms + store_ms + store_database_ms + score_ms
    return {
        "clients": clients,
        "floor_cpu_ms": round(floor_ms, 3),
        "allowed_extra_ms": round(floor_ms / share - floor_ms, 3),
        "store_cpu_ms": round(store_ms, 3),
        "store_database_cpu_ms": round(store_database_ms, 3),
        "score_cpu_ms": round(score_ms, 3),
        "explained": explainer is not None,
        "best_share": round(floor_ms / least_ms, 3),
    }


def batch_budget(*, tenant: str, bare_ms: float) -> dict[str, Any] | None:
    """Storing the rows of the newest stored batch alone, against the bare model's time on them."""
    newest = Prediction.objects.filter(tenant=tenant, batch_id__isnull=False).order_by("-id").first()
    if newest is None:
        return None
    predictions = list(Prediction.objects.filter(batch_id=newest.batch_id).order_by("id"))
    stored = _storing([_stored_batch(predictions)])
    wall_ms = 1000 * stored.wall_s
    database_ms = None if stored.database_cpu_s is None else 1000 * stored.database_cpu_s
    return {
        "rows": len(predictions),
        "store_ms": round(wall_ms, 1),
        "store_ratio": round(wall_ms / bare_ms, 2),
        "database_cpu_ms": None if database_ms is None else round(database_ms, 1),
        "database_ratio": None if database_ms is None else round(database_ms / bare_ms, 2),
    }


def bench_budget(
    figures: Mapping[str, Any], *, tenant: str, bundle: ModelBundle, record: Mapping[str, Any]
) -> dict[str, Any]:
    """What the targets of this run leave: /predict's (with an HTTP phase) and the batch's."""
    http_figures = figures.get("http")
    return {
        "predict": None if http_figures is None else predict_budget(
            http_figures, tenant=tenant, bundle=bundle, record=record, share=TARGET_THROUGHPUT_SHARE,
            clients=TARGET_CLIENTS,
        ),
        "batch": batch_budget(tenant=tenant, bare_ms=figures["bare"]["batch"]["median_ms"]),
    }

"""The prediction log `manage.py bench_monitoring` times GET /monitoring on: made once, then reused.

`monitoring_data_prepare` gives the tenant a small lead model trained on demo leads
(bench/common.py), stores N of its predictions spread over the last days (inserted the
way the scoring service stores them, COPY on PostgreSQL) and outcomes for some of the
scored leads. A rerun that asks for the same counts reuses what is there.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import Max, Min, QuerySet
from django.utils import timezone

from bench.common import active_bundle, bench_model_train, bench_tenant_reset, json_records
from bench.types import BenchData, MonitoringBenchConfig
from demo.data import generate_leads
from leadml.ml.bundle import ModelBundle
from leadml.ml.types import LEAD_CONVERSION
from monitoring.models import Outcome
from monitoring.services.outcomes import outcomes_record
from predictions.models import Prediction
from predictions.services import prediction_class, tier_for_percentile
from predictions.prediction_log import PredictionRow, predictions_insert
from registry.models import ModelVersion

POSITIVE_STATUSES = ["customer", "won"]
# Outcomes go in through the service in calls of this size, as a CRM would send them.
OUTCOMES_PER_CALL = 5000


def monitoring_data_prepare(
    config: MonitoringBenchConfig, *, log: Callable[[str], None]
) -> tuple[ModelVersion, dict[str, Any]]:
    """Return the bench model and what was done to get its data: reused, or built now."""
    version = ModelVersion.objects.filter(
        tenant=config.tenant, model_type=LEAD_CONVERSION, status=ModelVersion.Status.ACTIVE
    ).first()
    if version is not None and not config.fresh:
        stored = _model_predictions(version).count()
        outcomes = Outcome.objects.filter(tenant=config.tenant, model_type=LEAD_CONVERSION).count()
        if stored == config.predictions and outcomes == config.outcomes:
            log(f"Reusing {stored:,} predictions and {outcomes:,} outcomes of tenant '{config.tenant}'")
            return version, {"reused": True}
        log(f"Tenant '{config.tenant}' has {stored:,} predictions and {outcomes:,} outcomes; rebuilding")

    log(f"Resetting tenant '{config.tenant}' ...")
    _tenant_reset(tenant=config.tenant)
    # Frees the deleted rows' pages for the new ones; else a rerun doubles the table on disk.
    _analyze()
    training = generate_leads(config.training_rows, seed=config.seed)
    data = BenchData("demo leads", "status", POSITIVE_STATUSES, json_records(training), [])
    log(f"Training on {config.training_rows:,} demo leads ...")
    _, train_seconds = bench_model_train(tenant=config.tenant, data=data)
    version, bundle = active_bundle(tenant=config.tenant)
    log(f"Inserting {config.predictions:,} predictions ...")
    insert_seconds, items = _predictions_insert(version=version, bundle=bundle, config=config, log=log)
    log(f"Recording {len(items):,} outcomes ...")
    started = time.perf_counter()
    accepted = 0
    for start in range(0, len(items), OUTCOMES_PER_CALL):
        result = outcomes_record(
            tenant=config.tenant, model_type=LEAD_CONVERSION, items=items[start : start + OUTCOMES_PER_CALL]
        )
        accepted += result.accepted
    outcome_seconds = time.perf_counter() - started
    log("Vacuuming and analysing ...")
    started = time.perf_counter()
    _analyze()
    return version, {
        "reused": False,
        "train_s": round(train_seconds["train_s"], 1),
        **insert_seconds,
        "outcomes_accepted": accepted,
        "outcomes_s": round(outcome_seconds, 1),
        "analyze_s": round(time.perf_counter() - started, 1),
    }


def _tenant_reset(*, tenant: str) -> None:
    bench_tenant_reset(tenant=tenant)


def _model_predictions(version: ModelVersion) -> QuerySet[Prediction]:
    return Prediction.objects.filter(model_version_id=version.pk, source=Prediction.Source.MODEL)


def _predictions_insert(
    *, version: ModelVersion, bundle: ModelBundle, config: MonitoringBenchConfig, log: Callable[[str], None]
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Store `config.predictions` scored demo leads, oldest first; return timings and outcomes to send.

    Chunk k holds the k-th slice of the time span, its times sorted: the table ends up in
    the order a live log is written in, which is what the indexes on time see in production.
    """
    rng = np.random.default_rng(config.seed)
    now = timezone.now()
    span = timedelta(days=config.days)
    chunks = math.ceil(config.predictions / config.chunk_rows)
    outcome_share = config.outcomes / config.predictions
    items: list[dict[str, Any]] = []
    seconds = {"generate_s": 0.0, "score_s": 0.0, "insert_s": 0.0}
    for chunk in range(chunks):
        began = time.perf_counter()
        first = chunk * config.chunk_rows
        size = min(config.chunk_rows, config.predictions - first)
        leads = generate_leads(size, seed=config.seed + 1 + chunk)
        statuses = leads.pop("status").tolist()
        leads["id"] = [f"lead-{first + index + 1:07d}" for index in range(size)]
        records = json_records(leads)
        slice_start = now - span + span * chunk / chunks
        offsets = np.sort(rng.random(size)) * (span / chunks).total_seconds()
        created = [slice_start + timedelta(seconds=float(offset)) for offset in offsets]
        scored = time.perf_counter()
        values = bundle.predict(pd.DataFrame.from_records(records, columns=list(bundle.schema.names)))
        inserted = time.perf_counter()
        predictions_insert(
            [
                PredictionRow(
                    tenant=config.tenant,
                    model_type=LEAD_CONVERSION,
                    model_version_id=version.pk,
                    entity_id=record["id"],
                    batch_id=None,
                    source=Prediction.Source.MODEL,
                    input=record,
                    output=_output(bundle, float(value)),
                    value=round(float(value), 6),
                    latency_ms=5.0,
                    created_at=created_at,
                )
                for record, value, created_at in zip(records, values, created, strict=True)
            ]
        )
        done = time.perf_counter()
        seconds["generate_s"] += scored - began
        seconds["score_s"] += inserted - scored
        seconds["insert_s"] += done - inserted
        # The same share of every chunk gets an outcome, so every window has some.
        wanted = min(size, round(outcome_share * (first + size)) - len(items))
        for index in sorted(rng.choice(size, size=max(wanted, 0), replace=False)):
            items.append({"entity_id": records[index]["id"], "outcome": statuses[index]})
        if (chunk + 1) % 5 == 0 or chunk + 1 == chunks:
            log(f"  {first + size:,} predictions stored")
    return {key: round(value, 1) for key, value in seconds.items()}, items


def _output(bundle: ModelBundle, probability: float) -> dict[str, Any]:
    """What the scoring service stores as a lead prediction's output (without reasons)."""
    return {
        "warnings": [],
        "source": "model",
        "conversion_probability": round(probability, 6),
        "confidence": round(max(probability, 1.0 - probability), 6),
        "prediction_class": prediction_class(probability),
        "score": round(probability * 100),
        "tier": tier_for_percentile(bundle.percentile(probability)),
    }


def _analyze() -> None:
    """Refresh the planner's statistics, as autovacuum would after a million inserts."""
    # VACUUM also marks the pages all-visible (index-only scans), the state of a log that
    # autovacuum keeps up with. It cannot run inside a transaction (a test's, say).
    vacuum = connection.vendor == "postgresql" and not connection.in_atomic_block
    with connection.cursor() as cursor:
        for table in (Prediction._meta.db_table, Outcome._meta.db_table):
            cursor.execute(f'VACUUM (ANALYZE) "{table}"' if vacuum else f'ANALYZE "{table}"')


def data_summary(*, version: ModelVersion, tenant: str) -> dict[str, Any]:
    span = _model_predictions(version).aggregate(oldest=Min("created_at"), newest=Max("created_at"))
    return {
        "predictions": _model_predictions(version).count(),
        "outcomes": Outcome.objects.filter(tenant=tenant, model_type=LEAD_CONVERSION).count(),
        "table_rows": Prediction.objects.count(),
        "oldest": span["oldest"].isoformat() if span["oldest"] else None,
        "newest": span["newest"].isoformat() if span["newest"] else None,
    }

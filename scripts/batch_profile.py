"""Where a 10,000-record batch spends its time, and what it costs over the bare pipeline.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/leadml_bench \
        OMP_NUM_THREADS=1 .venv/bin/python scripts/batch_profile.py [--rows 20000] [--profile]

Trains the bench's lead model (bench/common.py) for the tenant `bench_batch`, then times in
one process, on the same records: the served scorer's `predict_proba` on a ready
DataFrame (the bare pipeline), `predictions_make(batch=True)` (validation, scoring, COPY
storage) and POST /predict/batch through Django's test client (parser, view, renderer;
no sockets). Ratios are only comparable within one run: the machine may be shared.
With --profile, prints the cProfile of one service batch.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadml.settings.base")

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402
import pandas as pd  # noqa: E402
from django.core.management import call_command  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from bench.common import active_bundle, bench_model_train, bench_tenant_reset  # noqa: E402
from bench.scoring import bench_data_load, served_scorer  # noqa: E402
from bench.types import BenchConfig  # noqa: E402
from leadml.ml.types import LEAD_CONVERSION  # noqa: E402
import predictions.services  # noqa: E402
from predictions.services import predictions_make  # noqa: E402
from predictions.prediction_log import predictions_tenant_delete  # noqa: E402
from registry.selectors import model_version_get_active  # noqa: E402
from registry.services import api_token_create  # noqa: E402

TENANT = "bench_batch"


def median_seconds(call, runs: int) -> float:
    durations = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return statistics.median(durations)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000, help="training rows")
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--phases", action="store_true", help="time the service's steps (median of --runs)")
    parser.add_argument("--reuse", action="store_true", help="score with the tenant's model if it has one")
    options = parser.parse_args()

    call_command("migrate", verbosity=0)
    config = BenchConfig(rows=options.rows, batch_rows=options.batch_rows, tenant=TENANT)
    data = bench_data_load(config)
    if not (options.reuse and model_version_get_active(tenant=TENANT, model_type=LEAD_CONVERSION)):
        bench_tenant_reset(tenant=TENANT)
        bench_model_train(tenant=TENANT, data=data)
    _, bundle = active_bundle(tenant=TENANT)
    records = data.records

    scorer = served_scorer(bundle)
    frame = pd.DataFrame.from_records(list(records), columns=list(bundle.schema.names))
    scorer.predict_proba(frame)

    def service() -> None:
        predictions_make(tenant=TENANT, model_type=LEAD_CONVERSION, records=list(records), batch=True)

    _, key = api_token_create(name="batch profile", tenant=TENANT)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    body = orjson.dumps({"model_type": LEAD_CONVERSION, "user_id": TENANT, "data": list(records)})

    def over_http() -> None:
        response = client.generic("POST", "/predict/batch", body, content_type="application/json")
        assert response.status_code == 200, response.content[:500]

    service()
    over_http()
    # Interleaved, so that a load change on a shared machine hits all three alike.
    timings: dict[str, list[float]] = {"bare": [], "service": [], "http": []}
    calls = {"bare": lambda: scorer.predict_proba(frame), "service": service, "http": over_http}
    for _ in range(options.runs):
        for name, call in calls.items():
            timings[name].append(median_seconds(call, 1))
    bare_s, service_s, http_s = (statistics.median(timings[name]) for name in ("bare", "service", "http"))
    print(f"rows={len(records)} database={django.db.connection.vendor}")
    print(f"bare predict_proba   {bare_s * 1000:8.1f} ms")
    print(f"service batch        {service_s * 1000:8.1f} ms   ratio {service_s / bare_s:.2f}x (target <= 1.5x)")
    print(f"test-client HTTP     {http_s * 1000:8.1f} ms   ratio {http_s / bare_s:.2f}x (target <= 2.5x)")
    if options.phases:
        phases_print(service, options.runs)
    if options.profile:
        profiler = cProfile.Profile()
        profiler.runcall(service)
        stats = pstats.Stats(profiler).sort_stats("cumulative")
        stats.print_stats(45)
        stats.sort_stats("tottime").print_stats(25)
    predictions_tenant_delete(tenant=TENANT)
    if not options.reuse:
        bench_tenant_reset(tenant=TENANT)


# The service's steps, as predictions.services calls them (module-level names).
PHASES = (
    "records_check", "transaction_records_expand", "flatten_records", "_entity_ids_resolve", "_load",
    "_score", "_model_outputs", "_store", "public_ids", "predictions_insert",
)


def phases_print(service, runs: int) -> None:
    """Wrap each step with a timer, run the service `runs` times, print each step's median."""
    timings: dict[str, list[float]] = {}
    originals = {}
    for name in PHASES:
        original = getattr(predictions.services, name)
        originals[name] = original

        def timed(*args, __name=name, __original=original, **kwargs):
            started = time.perf_counter()
            try:
                return __original(*args, **kwargs)
            finally:
                timings.setdefault(__name, []).append(time.perf_counter() - started)

        setattr(predictions.services, name, timed)
    bundle_class = predictions.services.ModelBundle
    method_originals = {name: getattr(bundle_class, name) for name in ("prepare", "model_input", "predict_matrix")}
    for name, original in method_originals.items():
        def timed_method(self, *args, __name=name, __original=original, **kwargs):
            started = time.perf_counter()
            try:
                return __original(self, *args, **kwargs)
            finally:
                timings.setdefault(f"bundle.{__name}", []).append(time.perf_counter() - started)

        setattr(bundle_class, name, timed_method)
    try:
        totals = []
        for _ in range(runs):
            started = time.perf_counter()
            service()
            totals.append(time.perf_counter() - started)
    finally:
        for name, original in originals.items():
            setattr(predictions.services, name, original)
        for name, original in method_originals.items():
            setattr(bundle_class, name, original)
    print(f"service steps, median of {runs} runs (total {statistics.median(totals) * 1000:.1f} ms):")
    for name, seconds in timings.items():
        calls = len(seconds) // runs
        print(f"  {name:28} {statistics.median(seconds) * 1000 * calls:8.1f} ms  ({calls} call(s) per run)")


if __name__ == "__main__":
    main()

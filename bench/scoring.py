"""Measure what scoring through leadml costs: over the bare fitted pipeline, and over the HTTP floor.

`run_bench` trains a lead model for a dedicated tenant with the service's own training
job, then times the same records three ways: the served scikit-learn scorer alone, the
scoring service (validation and storing every prediction), and the HTTP API under
`manage.py serve`. Over HTTP, `/predict` is compared with the bench floor
(bench/floor.py): a constant answer behind the same server, middleware, token
check and throttle, so the ratios say what scoring adds to any request on this machine
in this run (README, "Benchmark"). A target that is missed gets a quick in-process
cProfile of what it measures, to say where the time goes.

It returns the figures as one JSON-ready dict; `report_lines` turns them into the text
the `bench` management command prints. The bench tenant's data is deleted at the start
of each run, so reruns start clean.
"""
from __future__ import annotations

import cProfile
import http.client
import json
import os
import platform
import pstats
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from bench.floor import FLOOR_PATH
from bench.server import (
    HTTP_TIMEOUT_SECONDS,
    LoadTally,
    Server,
    ServeFailed,
    load_run,
    post,
    serving,
    worker_cpu_seconds,
    worker_rss_mib,
)
from demo.data import generate_leads
from leadml.ml.bundle import ModelBundle
from leadml.ml.types import LEAD_CONVERSION
from predictions.models import Prediction
from predictions.services import predictions_make
from registry.cache import bundle_load
from registry.models import ApiToken, ModelVersion, PromotionEvent
from registry.selectors import model_version_get_active, model_version_list
from registry.services import api_token_create, api_token_revoke, model_versions_delete
from training.models import Dataset, TrainingJob
from training.services.datasets import dataset_create
from training.services.jobs import training_job_run

BENCH_TENANT = "bench"
MODEL_NAME = "bench_lead_model"
ALGORITHM = "gradient_boosting"
# One grid point and two folds: the bench measures scoring, so training should be quick.
TRAINING_CONFIG: dict[str, Any] = {
    "param_grid": {"learning_rate": [0.1], "max_leaf_nodes": [31]},
    "cv_folds": 2,
}
BANK_CSV = Path("bank_marketing_additional") / "bank-additional-full.csv"
DATASETS_DIR_ENV = "LEADML_DATASETS_DIR"
WARMUP_SECONDS = 2.0
# Each HTTP comparison alternates its two sides in this many rounds, so that whatever
# else the shared machine does at the time falls on both sides alike.
LOAD_ROUNDS = 4
PREDICT_PATH = "/predict"
FLOOR = f"/{FLOOR_PATH}"
# In-process requests profiled when a single-request target is missed.
PROFILE_CALLS = 20
# A part under this share of the profiled time is not worth a mention.
PROFILE_MIN_SHARE = 0.04
PROFILE_PARTS = 6

# The targets (issue 13): /predict with reasons against the floor, in the same run.
TARGET_CLIENTS = 8
TARGET_THROUGHPUT_SHARE = 0.70  # /predict req/s over the floor's, 8 clients
TARGET_P99_RATIO = 2.0  # /predict p99 over the floor's, 8 clients
TARGET_MAX_MS = 100.0  # no /predict request slower, 8 clients
TARGET_SINGLE_OVERHEAD_MS = 3.0  # /predict p50 over the floor's, 1 client
TARGET_BATCH_RATIO = 1.5  # in-process batch (validation, scoring, COPY) over bare predict_proba
TARGET_HTTP_BATCH_RATIO = 2.5  # the same batch over HTTP
DATABASE_LOCKED = "database is locked"


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
class BenchData:
    """Training rows (target included) and the records scored (target removed)."""

    name: str
    target: str
    positive_values: list[str]
    training_rows: list[dict[str, Any]]
    records: list[dict[str, Any]]


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


# --- Data and model ------------------------------------------------------------


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


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    # Through JSON, as a CRM would send them: NaN becomes null, numpy scalars plain numbers.
    return json.loads(frame.to_json(orient="records"))


def _demo_data(config: BenchConfig) -> BenchData:
    training = generate_leads(config.rows, seed=config.seed)
    scored = generate_leads(config.batch_rows, seed=config.seed + 1).drop(columns=["status"])
    return BenchData("demo leads", "status", ["customer", "won"], _records(training), _records(scored))


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
    return BenchData("bank marketing", "y", ["yes"], _records(training), _records(scored))


def bench_tenant_reset(*, tenant: str) -> dict[str, int]:
    """Delete the tenant's jobs, models, datasets and predictions and revoke its tokens."""
    if not tenant.startswith(BENCH_TENANT):
        # Everything the tenant owns is deleted: never let a typo aim that at a real tenant.
        raise BenchError(f"the bench tenant must start with '{BENCH_TENANT}', not {tenant!r}")
    TrainingJob.objects.filter(tenant=tenant).delete()
    PromotionEvent.objects.filter(tenant=tenant).delete()
    versions = list(model_version_list(tenant=tenant))
    deleted_models = model_versions_delete(versions=versions, force=True) if versions else 0
    deleted_datasets = Dataset.objects.filter(tenant=tenant).delete()[1].get("training.Dataset", 0)
    deleted_predictions = Prediction.objects.filter(tenant=tenant).delete()[0]
    for token in ApiToken.objects.filter(tenant=tenant, revoked_at__isnull=True):
        api_token_revoke(token=token)
    return {"models": deleted_models, "datasets": deleted_datasets, "predictions": deleted_predictions}


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
    job = TrainingJob.objects.create(
        tenant=tenant,
        model_type=LEAD_CONVERSION,
        algorithm=ALGORITHM,
        model_name=MODEL_NAME,
        training_config={"dataset_id": str(dataset.id), **TRAINING_CONFIG},
        dataset=dataset,
        requested_by="bench",
    )
    training_job_run(job_id=job.pk)
    job.refresh_from_db()
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


def served_scorer(bundle: ModelBundle) -> Any:
    """The estimator whose probabilities the service returns (calibrated when there is one)."""
    return bundle.calibrator if bundle.calibrator is not None else bundle.pipeline


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


def _cycled(items: Sequence[Any], count: int) -> list[Any]:
    return [items[index % len(items)] for index in range(count)]


def prediction_count(*, tenant: str, since: datetime | None = None) -> int:
    predictions = Prediction.objects.filter(tenant=tenant)
    if since is not None:
        predictions = predictions.filter(created_at__gte=since)
    return predictions.count()


# --- Bare pipeline and scoring service ------------------------------------------


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


# --- HTTP ----------------------------------------------------------------------


@dataclass(frozen=True)
class LoadTarget:
    """One side of an HTTP comparison: a path on a server, and whether its answers are stored."""

    label: str
    server: Server
    path: str
    stores: bool


@dataclass(frozen=True)
class HttpSession:
    """What every HTTP phase shares: the tenant, its token's headers, the request bodies."""

    tenant: str
    headers: dict[str, str]
    bodies: list[bytes]


def _request_bodies(tenant: str, records: Sequence[dict[str, Any]]) -> list[bytes]:
    return [
        json.dumps({"model_type": LEAD_CONVERSION, "user_id": tenant, "data": record}).encode() for record in records
    ]


def _batch_body(tenant: str, records: Sequence[dict[str, Any]]) -> bytes:
    return json.dumps({"model_type": LEAD_CONVERSION, "user_id": tenant, "data": list(records)}).encode()


def load_summary(tally: LoadTally, *, stored: int | None, rss_mib: list[float]) -> dict[str, Any]:
    """Latency, throughput, errors, stored rows and worker memory of one measured load."""
    return {
        **latency_summary(tally.latencies),
        "ok": len(tally.latencies),
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors),
        "error_samples": tally.error_samples,
        "requests_per_s": round(len(tally.latencies) / tally.seconds, 1) if tally.seconds else 0.0,
        "seconds": round(tally.seconds, 2),
        "worker_cpu_ms": (
            round(1000 * tally.worker_cpu_seconds / len(tally.latencies), 3) if tally.latencies else float("nan")
        ),
        "stored": stored,
        "rss_mib": rss_mib,
    }


def _measured_round(session: HttpSession, target: LoadTarget, *, clients: int, seconds: float) -> tuple[LoadTally, int]:
    """One timed load of `target`; the rows it stored, counted outside the timed part."""
    before = prediction_count(tenant=session.tenant) if target.stores else 0
    cpu_before = worker_cpu_seconds(target.server)
    tally = load_run(
        port=target.server.port, path=target.path, headers=session.headers, bodies=session.bodies,
        clients=clients, duration=seconds,
    )
    tally.worker_cpu_seconds = worker_cpu_seconds(target.server) - cpu_before
    stored = prediction_count(tenant=session.tenant) - before if target.stores else 0
    return tally, stored


def compared_loads(
    session: HttpSession, targets: Sequence[LoadTarget], *, clients: int, duration: float
) -> dict[str, dict[str, Any]]:
    """Load each target for `duration` seconds in all, alternating them in LOAD_ROUNDS rounds."""
    tallies = {target.label: LoadTally() for target in targets}
    stored = dict.fromkeys(tallies, 0)
    for number in range(LOAD_ROUNDS):
        # A B, B A, A B, ...: neither side always follows the other.
        for target in targets if number % 2 == 0 else reversed(targets):
            tally, rows = _measured_round(session, target, clients=clients, seconds=duration / LOAD_ROUNDS)
            tallies[target.label].add(tally)
            stored[target.label] += rows
    return {
        target.label: {"label": target.label, "path": target.path, "clients": clients}
        | load_summary(
            tallies[target.label], stored=stored[target.label] if target.stores else None,
            rss_mib=worker_rss_mib(target.server),
        )
        for target in targets
    }


def http_batch(session: HttpSession, server: Server, *, body: bytes, runs: int) -> dict[str, Any]:
    """POST /predict/batch `runs` times: the median time, the predictions answered and stored."""
    durations: list[float] = []
    tally = LoadTally()
    answered = 0
    before = prediction_count(tenant=session.tenant)
    for _ in range(runs):
        connection_ = http.client.HTTPConnection("127.0.0.1", server.port, timeout=HTTP_TIMEOUT_SECONDS)
        began = time.perf_counter()
        try:
            status, payload = post(connection_, "/predict/batch", body, session.headers)
        except (OSError, http.client.HTTPException) as error:
            tally.error(type(error).__name__, str(error))
            continue
        finally:
            connection_.close()
        if status != 200:
            tally.error(str(status), payload.decode(errors="replace"))
            continue
        durations.append(time.perf_counter() - began)
        answered += int(json.loads(payload)["total_predictions"])
    figures = runs_summary(durations) if durations else {"runs": 0}
    return figures | {
        "answered": answered,
        "stored": prediction_count(tenant=session.tenant) - before,
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors),
        "error_samples": tally.error_samples,
        "rss_mib": worker_rss_mib(server),
    }


def _warm_up(session: HttpSession, server: Server, *, clients: int, seconds: float) -> dict[str, int]:
    """Every worker loads the model and opens its connections; the answers count as answered too."""
    answered = stored = 0
    for target in (LoadTarget("predict", server, PREDICT_PATH, True), LoadTarget("floor", server, FLOOR, False)):
        tally, rows = _measured_round(session, target, clients=clients, seconds=seconds)
        if target.stores:
            answered, stored = answered + len(tally.latencies), stored + rows
    return {"answered": answered, "stored": stored}


def access_log_check(
    session: HttpSession, server: Server, *, workers: int, clients: int, duration: float, log_dir: Path
) -> dict[str, Any]:
    """The floor at `clients` clients with gunicorn's access log on and off, alternated."""
    other = not server.access_log
    log_path = log_dir / f"bench-serve-access-log-{'on' if other else 'off'}.log"
    with serving(workers=workers, log_path=log_path, access_log=other) as second:
        sides = [LoadTarget("default", server, FLOOR, False), LoadTarget("other", second, FLOOR, False)]
        loads = compared_loads(session, sides, clients=clients, duration=duration)
    on, off = (loads["other"], loads["default"]) if other else (loads["default"], loads["other"])
    throughput_cost = 100.0 * (1.0 - _ratio(on["requests_per_s"], off["requests_per_s"]))
    cpu_cost = 100.0 * (_ratio(on["worker_cpu_ms"], off["worker_cpu_ms"]) - 1.0)
    return {"default_on": server.access_log, "on": on, "off": off, "cost_pct": round(throughput_cost, 1),
            "cpu_cost_pct": round(cpu_cost, 1), "other_log": str(log_path)}


def _phase_totals(figures: Mapping[str, Any], warmup: Mapping[str, int]) -> tuple[int, int]:
    """Stored rows and answered predictions over every HTTP phase that stores."""
    storing = [load for load in figures["loads"] if load["stored"] is not None]
    stored = warmup["stored"] + sum(load["stored"] for load in storing) + figures["batch"]["stored"]
    answered = warmup["answered"] + sum(load["ok"] for load in storing) + figures["batch"]["answered"]
    return stored, answered


def bench_http(*, tenant: str, records: Sequence[dict[str, Any]], config: BenchConfig) -> dict[str, Any]:
    """Serve the API; /predict against the floor at each client count, then /predict/batch."""
    token, key = api_token_create(name="bench", tenant=tenant)
    session = HttpSession(tenant, {"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
                          _request_bodies(tenant, records[:1000]))
    workers = config.workers or settings.WORKERS
    log_path = Path(settings.VAR_DIR) / "bench-serve.log"
    figures: dict[str, Any] = {"workers": workers, "threads": settings.THREADS, "server_log": str(log_path)}
    try:
        with serving(workers=workers, log_path=log_path) as server:
            figures["health_status"], figures["access_log"] = server.health_status, server.access_log
            figures["health_first_failure"] = server.health_first_failure
            warmup = _warm_up(session, server, clients=max(config.clients),
                              seconds=min(WARMUP_SECONDS, config.duration))
            sides = [LoadTarget("predict", server, PREDICT_PATH, True), LoadTarget("floor", server, FLOOR, False)]
            figures["loads"] = [
                load
                for clients in config.clients
                for load in compared_loads(session, sides, clients=clients, duration=config.duration).values()
            ]
            figures["batch"] = http_batch(session, server, body=_batch_body(tenant, records), runs=config.batch_runs)
            if config.access_log_check:
                figures["access_log_check"] = access_log_check(
                    session, server, workers=workers, clients=max(config.clients), duration=config.duration,
                    log_dir=log_path.parent,
                )
            figures["stored"], figures["answered"] = _phase_totals(figures, warmup)
        figures["server_exit_code"] = server.process.returncode
        figures["database_locked_lines"] = server.log_count(DATABASE_LOCKED)
    finally:
        api_token_revoke(token=token)
    return figures


# --- Where the time goes ---------------------------------------------------------


def _label(function: tuple[str, int, str]) -> str:
    filename, _, name = function
    if filename == "~":  # a built-in: cProfile already names it, e.g. <method 'execute' ...>
        return name
    return f"{Path(filename).stem}.{name}"


def _is_project_code(filename: str) -> bool:
    base = str(settings.BASE_DIR)
    return filename.startswith(base) and "site-packages" not in filename and "/bench" not in filename


def _heaviest(stats: pstats.Stats, *, path_part: str, name: str) -> tuple[str, int, str] | None:
    """The function of this project called `name`, in a file whose path holds `path_part`, that took longest."""
    found = [function for function in stats.stats  # type: ignore[attr-defined]
             if function[2] == name and path_part in function[0] and _is_project_code(function[0])]
    return max(found, key=lambda function: stats.stats[function][3], default=None)  # type: ignore[attr-defined]


def time_breakdown(stats: pstats.Stats, *, calls: int, root_path: str, root_name: str) -> dict[str, Any]:
    """Where a profiled call spends its time: outside `root`, down its heaviest chain, then the parts.

    From the root function (a view's `post`, `predictions_make`), step into its heaviest
    callee of this project while that holds most of it; the function reached is split
    into its callees (ours or libraries'). Times are per call, under cProfile (which
    makes Python-heavy parts look heavier than they are).
    """
    stats.calc_callees()
    raw = stats.stats  # type: ignore[attr-defined]  # {function: (cc, nc, tt, ct, callers)}
    callees = stats.all_callees  # type: ignore[attr-defined]
    total = stats.total_tt / calls  # type: ignore[attr-defined]
    root = _heaviest(stats, path_part=root_path, name=root_name)
    if root is None:
        return {"total_ms": round(total * 1000, 2), "outside_ms": None, "chain": [], "parts": []}
    chain = [root]
    while ours := {callee: row[3] for callee, row in callees.get(chain[-1], {}).items()
                   if _is_project_code(callee[0]) and callee not in chain}:
        heaviest = max(ours, key=ours.get)
        if ours[heaviest] < 0.6 * raw[chain[-1]][3]:
            break
        chain.append(heaviest)
    parts = sorted(((callee, row[3]) for callee, row in callees.get(chain[-1], {}).items()), key=lambda item: -item[1])
    return {
        "total_ms": round(total * 1000, 2),
        "outside_ms": round((total - raw[root][3] / calls) * 1000, 2),
        "chain": [{"name": _label(function), "ms": round(raw[function][3] / calls * 1000, 2)} for function in chain],
        "parts": [
            {"name": _label(function), "ms": round(seconds / calls * 1000, 2)}
            for function, seconds in parts[:PROFILE_PARTS]
            if seconds / calls >= PROFILE_MIN_SHARE * total
        ],
    }


def profiled(call: Callable[[], Any], *, calls: int, root: tuple[str, str]) -> dict[str, Any]:
    """Run `call` `calls` times under cProfile and say where its time goes, from `root` (path part, name)."""
    profile = cProfile.Profile()
    for _ in range(calls):
        profile.runcall(call)
    return time_breakdown(pstats.Stats(profile), calls=calls, root_path=root[0], root_name=root[1])


# Where a profile's breakdown starts: the prediction views' `post`, the scoring service.
VIEW_ROOT = ("predictions/apis", "post")
SERVICE_ROOT = ("predictions/services", "predictions_make")


def _in_process_client(key: str) -> Client:
    # The whole Django stack (middleware, token check, throttle, parser, renderer)
    # without the server. 127.0.0.1 is an allowed host in every configuration.
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="127.0.0.1")


def _posted(client: Client, path: str, body: bytes) -> Callable[[], Any]:
    def call() -> Any:
        response = client.post(path, data=body, content_type="application/json")
        if response.status_code != 200:
            raise BenchError(f"in-process POST {path} answered {response.status_code}: {response.content[:300]!r}")
        return response

    return call


def where_the_time_goes(
    figures: Mapping[str, Any], checks: Sequence[TargetCheck], *, tenant: str, records: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Profile in-process what each missed target measures: one /predict, one batch."""
    missed = {check.topic for check in checks if check.passed is False}
    found: dict[str, Any] = {}
    token, key = api_token_create(name="bench-profile", tenant=tenant)
    try:
        client = _in_process_client(key)
        if "predict" in missed:
            body = _request_bodies(tenant, records[:1])[0]
            _posted(client, PREDICT_PATH, body)()  # warm-up
            found["predict"] = profiled(_posted(client, PREDICT_PATH, body), calls=PROFILE_CALLS, root=VIEW_ROOT)
        if "batch" in missed:
            score = lambda: predictions_make(  # noqa: E731
                tenant=tenant, model_type=LEAD_CONVERSION, records=list(records), batch=True
            )
            score()  # warm-up: the first batch of a process fills caches the later ones reuse
            found["batch"] = profiled(score, calls=1, root=SERVICE_ROOT) | {"outside_ms": None}
        if "http_batch" in missed:
            call = _posted(client, "/predict/batch", _batch_body(tenant, records))
            call()  # warm-up, as above
            found["http_batch"] = profiled(call, calls=1, root=VIEW_ROOT)
    finally:
        api_token_revoke(token=token)
    if "errors" in missed:
        found["errors"] = _errors_seen(figures)
    return found


def _errors_seen(figures: Mapping[str, Any]) -> dict[str, Any]:
    """The HTTP errors by kind with a sample answer of each, and the rows stored against those answered."""
    service, http_figures = figures["service"], figures.get("http") or {}
    kinds: dict[str, int] = {}
    samples: dict[str, str] = {}
    for load in [*http_figures.get("loads", []), *([http_figures["batch"]] if http_figures else [])]:
        for kind, count in load["error_kinds"].items():
            kinds[kind] = kinds.get(kind, 0) + count
        for kind, sample in load["error_samples"].items():
            samples.setdefault(kind, sample)
    stored = {"service": [service["stored"], service["answered"]]}
    if http_figures:
        stored["http"] = [http_figures["stored"], http_figures["answered"]]
    return {"error_kinds": kinds, "error_samples": samples, "stored_answered": stored,
            "database_locked_lines": http_figures.get("database_locked_lines", 0)}


# --- Targets -------------------------------------------------------------------


@dataclass(frozen=True)
class TargetCheck:
    name: str
    value: str
    target: str
    passed: bool | None  # None: not measured
    topic: str = ""  # what says where its time goes: predict, batch, http_batch, errors

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "SKIP"}[self.passed]


def _load_for(http_figures: Mapping[str, Any], label: str, clients: int, *, largest: bool) -> Mapping[str, Any]:
    """The `label` load with `clients` clients, else the one with the most (or fewest) clients."""
    loads = sorted((load for load in http_figures["loads"] if load["label"] == label), key=lambda load: load["clients"])
    exact = [load for load in loads if load["clients"] == clients]
    return exact[0] if exact else (loads[-1] if largest else loads[0])


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("inf")


def _many_clients_checks(http_figures: Mapping[str, Any]) -> list[TargetCheck]:
    predict = _load_for(http_figures, "predict", TARGET_CLIENTS, largest=True)
    floor = _load_for(http_figures, "floor", TARGET_CLIENTS, largest=True)
    at = f"/predict, {predict['clients']} clients"
    share = _ratio(predict["requests_per_s"], floor["requests_per_s"])
    p99 = _ratio(predict["p99_ms"], floor["p99_ms"])
    stored_ok = predict["stored"] == predict["ok"]
    return [
        TargetCheck(f"{at}: req/s / floor's", f"{share:.2f} ({predict['requests_per_s']:,.0f} / "
                    f"{floor['requests_per_s']:,.0f})", f">= {TARGET_THROUGHPUT_SHARE:.2f}",
                    share >= TARGET_THROUGHPUT_SHARE, "predict"),
        TargetCheck(f"{at}: p99 / floor's p99", f"{p99:.2f}x ({predict['p99_ms']:.1f} / {floor['p99_ms']:.1f} ms)",
                    f"<= {TARGET_P99_RATIO:g}x", p99 <= TARGET_P99_RATIO, "predict"),
        TargetCheck(f"{at}: slowest request", f"{predict['max_ms']:.1f} ms", f"<= {TARGET_MAX_MS:g} ms",
                    predict["max_ms"] <= TARGET_MAX_MS, "predict"),
        TargetCheck(f"{at}: errors; stored = answered",
                    f"{predict['errors']}; {predict['stored']:,} {'=' if stored_ok else '!='} {predict['ok']:,}",
                    "0; equal", predict["errors"] == 0 and stored_ok, "errors"),
    ]


def _one_client_check(http_figures: Mapping[str, Any]) -> TargetCheck:
    predict = _load_for(http_figures, "predict", 1, largest=False)
    floor = _load_for(http_figures, "floor", 1, largest=False)
    overhead = predict["p50_ms"] - floor["p50_ms"]
    return TargetCheck(
        f"/predict, {predict['clients']} client: p50 - floor's p50",
        f"{overhead:+.2f} ms ({predict['p50_ms']:.2f} - {floor['p50_ms']:.2f})",
        f"<= +{TARGET_SINGLE_OVERHEAD_MS:g} ms", overhead <= TARGET_SINGLE_OVERHEAD_MS, "predict",
    )


def _sqlite_check(figures: Mapping[str, Any]) -> TargetCheck:
    name = f"SQLite: errors at {TARGET_CLIENTS} clients (/predict, floor)"
    http_figures = figures.get("http")
    if figures["machine"]["database"]["vendor"] != "sqlite":
        return TargetCheck(name, "not SQLite", "0", None, "errors")
    if http_figures is None:
        return TargetCheck(name, "not measured", "0", None, "errors")
    many = [_load_for(http_figures, label, TARGET_CLIENTS, largest=True) for label in ("predict", "floor")]
    errors = sum(load["errors"] for load in many)
    return TargetCheck(name, f"{errors}", "0", errors == 0, "errors")


def _not_measured(name: str, target: str, topic: str) -> TargetCheck:
    return TargetCheck(name, "not measured", target, None, topic)


def targets_check(figures: Mapping[str, Any]) -> list[TargetCheck]:
    """Compare the figures of this run with the targets: ratios within the run, no absolute times."""
    bare, service, http_figures = figures["bare"], figures["service"], figures.get("http")
    rows = service["batch_rows"]
    batch_ratio = _ratio(service["batch"]["median_ms"], bare["batch"]["median_ms"])
    checks = []
    if http_figures is None:
        checks += [
            _not_measured(f"/predict, {TARGET_CLIENTS} clients, against the floor", "see README", "predict"),
            _not_measured("/predict, 1 client: p50 - floor's p50", f"<= +{TARGET_SINGLE_OVERHEAD_MS:g} ms", "predict"),
        ]
    else:
        checks += [*_many_clients_checks(http_figures), _one_client_check(http_figures)]
    checks.append(TargetCheck(f"batch {rows:,} in-process / bare predict_proba", f"{batch_ratio:.2f}x",
                              f"<= {TARGET_BATCH_RATIO:g}x", batch_ratio <= TARGET_BATCH_RATIO, "batch"))
    if http_figures is None or not http_figures["batch"].get("median_ms"):
        checks.append(_not_measured(f"batch {rows:,} over HTTP / bare predict_proba",
                                    f"<= {TARGET_HTTP_BATCH_RATIO:g}x", "http_batch"))
    else:
        http_ratio = _ratio(http_figures["batch"]["median_ms"], bare["batch"]["median_ms"])
        checks.append(TargetCheck(f"batch {rows:,} over HTTP / bare predict_proba", f"{http_ratio:.2f}x",
                                  f"<= {TARGET_HTTP_BATCH_RATIO:g}x", http_ratio <= TARGET_HTTP_BATCH_RATIO,
                                  "http_batch"))
    checks.append(_sqlite_check(figures))
    stored_ok = service["stored"] == service["answered"] and (
        http_figures is None or http_figures["stored"] == http_figures["answered"]
    )
    checks.append(TargetCheck("stored = answered, every phase", "yes" if stored_ok else "no", "yes", stored_ok,
                              "errors"))
    return checks


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
    checks = targets_check(figures)
    figures["targets"] = [asdict(check) | {"verdict": check.verdict} for check in checks]
    if any(check.passed is False for check in checks):
        log("Profiling what the missed targets measure ...")
        figures["where_the_time_goes"] = where_the_time_goes(
            figures, checks, tenant=config.tenant, records=data.records
        )
    return figures


# --- Report --------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f} ms"


def report_lines(figures: Mapping[str, Any]) -> list[str]:
    """Render the figures as the text report the command prints."""
    machine, model, config = figures["machine"], figures["model"], figures["config"]
    bare, service = figures["bare"], figures["service"]
    database = machine["database"]
    rows = service["batch_rows"]
    lines = [
        f"leadml bench, {machine['date']}",
        f"machine   {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM",
        f"software  Python {machine['python']}, scikit-learn {machine['sklearn']}, "
        f"{database['vendor']} {database['version']}, OMP_NUM_THREADS={machine['omp_num_threads']}",
        f"model     {model['name']} v{model['version']} {model['algorithm']} on {config['dataset']} "
        f"({model['trained_rows']:,} rows, ROC-AUC {model.get('roc_auc')}, calibrated {model['calibrated']}); "
        f"upload {model['upload_s']} s, training {model['train_s']} s",
        "",
        f"{'':36}{'1 row p50':>12}{'1 row p99':>12}{f'{rows:,} rows (median)':>22}",
        f"{'bare predict_proba':36}{_ms(bare['single']['p50_ms']):>12}{_ms(bare['single']['p99_ms']):>12}"
        f"{_ms(bare['batch']['median_ms']):>22}",
        f"{'service predictions_make':36}{_ms(service['single']['p50_ms']):>12}"
        f"{_ms(service['single']['p99_ms']):>12}{_ms(service['batch']['median_ms']):>22}",
    ]
    unexplained = service["single_unexplained"]
    lines += [
        f"{'service, explain=False':36}{_ms(unexplained['p50_ms']):>12}{_ms(unexplained['p99_ms']):>12}",
        f"{'service batch, explain=True (1 run)':36}{'':24}{_ms(service['batch_explain']['median_ms']):>22}",
        f"  (1 row: {bare['single']['n']} calls each, the service's with reasons unless explain=False; "
        f"batch: median of {service['batch']['runs']} runs)",
    ]
    http_figures = figures.get("http")
    if http_figures is not None:
        lines += _http_lines(http_figures, rows)
    lines += [
        "",
        f"stored = answered  service: {service['stored']:,} stored / {service['answered']:,} answered"
        + (
            f"; HTTP: {http_figures['stored']:,} stored / {http_figures['answered']:,} answered"
            if http_figures
            else ""
        ),
        "",
        "targets (ratios within this run; README, Benchmark)",
    ]
    lines += [
        f"  {check['verdict']:5} {check['name']:48} {check['value']:>30}   (target {check['target']})"
        for check in figures["targets"]
    ]
    found = figures.get("where_the_time_goes")
    if found:
        lines += ["", "where the time goes (missed targets; in-process cProfile, which inflates Python-heavy parts)"]
        lines += _where_lines(found)
    return lines


def _rss(values: Sequence[float]) -> str:
    return " / ".join(f"{value:,.0f}" for value in values) + " MiB" if values else "-"


def _load_line(load: Mapping[str, Any]) -> str:
    label = f"POST {load['path']}, {load['clients']} client{'s' * (load['clients'] > 1)}"
    stored = "-" if load["stored"] is None else f"{load['stored']:,}"
    return (
        f"{label:36}{_ms(load['p50_ms']):>11}{_ms(load['p99_ms']):>11}{_ms(load['max_ms']):>11}"
        f"{load['requests_per_s']:>9,.1f}{load['worker_cpu_ms']:>8.2f}{load['ok']:>8,}{load['errors']:>7,}{stored:>8}"
        f"  {_rss(load['rss_mib'])}"
        + (f"  {load['error_kinds']}" if load["errors"] else "")
    )


def _http_lines(http_figures: Mapping[str, Any], rows: int) -> list[str]:
    access_log = "on" if http_figures["access_log"] else "off"
    lines = [
        "",
        f"HTTP (manage.py serve: gunicorn {http_figures['workers']} workers x {http_figures['threads']} threads, "
        f"access log {access_log}; /health {http_figures['health_status']}; server exit code "
        f"{http_figures.get('server_exit_code')}; log {http_figures['server_log']})",
    ]
    if http_figures.get("health_first_failure"):
        lines.append(f"  (while starting, /health first answered {http_figures['health_first_failure']})")
    lines += [
        f"{'':36}{'p50':>11}{'p99':>11}{'max':>11}{'req/s':>9}{'CPU ms':>8}{'ok':>8}{'errors':>7}{'stored':>8}"
        "  RSS per worker",
    ]
    lines += [_load_line(load) for load in http_figures["loads"]]
    batch = http_figures["batch"]
    lines.append(
        f"{f'POST /predict/batch, {rows:,} rows':36}median {_ms(batch.get('median_ms'))} of {batch['runs']} runs, "
        f"{batch['errors']} errors, {batch['stored']:,} stored / {batch['answered']:,} answered  "
        f"{_rss(batch['rss_mib'])}"
    )
    lines.extend((
        f"  (/predict and the floor alternate in {LOAD_ROUNDS} rounds per client count; keep-alive clients; "
        "CPU ms: the workers' CPU time per answer;",
        f"   '{DATABASE_LOCKED}' in the server log: {http_figures.get('database_locked_lines', 0)} lines)",
    ))
    check = http_figures.get("access_log_check")
    if check:
        lines += [
            "",
            f"access log, floor at {check['on']['clients']} clients, two servers alternated "
            f"({'on' if check['default_on'] else 'off'} by default):",
            f"  on  {check['on']['requests_per_s']:,.1f} req/s, p50 {_ms(check['on']['p50_ms'])}, "
            f"{check['on']['worker_cpu_ms']:.3f} ms worker CPU per answer",
            f"  off {check['off']['requests_per_s']:,.1f} req/s, p50 {_ms(check['off']['p50_ms'])}, "
            f"{check['off']['worker_cpu_ms']:.3f} ms worker CPU per answer",
            f"  the log costs {check['cost_pct']:+.1f} % of the throughput, {check['cpu_cost_pct']:+.1f} % CPU per answer",
        ]
    return lines


WHAT_IS_PROFILED = {
    "predict": f"POST /predict with reasons, in-process ({PROFILE_CALLS} calls; outside the view: Django, DRF, "
    "token, throttle, parser, renderer)",
    "batch": "predictions_make, batch (validation, scoring, COPY; 1 call)",
    "http_batch": "POST /predict/batch, in-process (1 call; outside the view: as for /predict)",
}


def _where_lines(found: Mapping[str, Any]) -> list[str]:
    lines = []
    for topic, breakdown in found.items():
        if topic == "errors":
            lines.append(
                f"  errors: {breakdown['error_kinds']}; '{DATABASE_LOCKED}' in the server log "
                f"{breakdown['database_locked_lines']} times; stored / answered {breakdown['stored_answered']}; "
                f"first answers: {breakdown['error_samples']}"
            )
            continue
        chain = " > ".join(f"{part['name']} {part['ms']:,.2f}" for part in breakdown["chain"])
        parts = ", ".join(f"{part['name']} {part['ms']:,.2f}" for part in breakdown["parts"])
        outside = breakdown["outside_ms"]
        lines += [
            f"  {WHAT_IS_PROFILED[topic]}: {breakdown['total_ms']:,.2f} ms a call profiled"
            + (f", {outside:,.2f} ms of it outside" if outside is not None else ""),
            f"    {chain} ms; of which {parts} ms",
        ]
    return lines

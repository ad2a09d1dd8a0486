"""Measure what scoring through leadml costs over the bare fitted pipeline (SPEC §9).

`run_bench` trains a lead model for a dedicated tenant with the service's own training
job, then times the same records three ways: the served scikit-learn scorer alone, the
scoring service (validation and storing every prediction), and the HTTP API under
`manage.py serve`. It returns the figures as one JSON-ready dict; `report_lines` turns
them into the text the `bench` management command prints.

The bench tenant's data is deleted at the start of each run, so reruns start clean.
"""
from __future__ import annotations

import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from django.conf import settings
from django.db import connection
from django.utils import timezone

from leadml.ml.bundle import ModelBundle
from leadml.ml.demo_data import generate_leads
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
# High enough that per-token throttling never answers 429 during the load phases.
THROTTLE_RATE = "1000000/min"
SERVER_START_TIMEOUT_SECONDS = 60.0
SERVER_STOP_TIMEOUT_SECONDS = 30.0
# A degraded /health (e.g. another tenant's broken model) still serves predictions;
# after this long we measure anyway and say so.
HEALTH_DEGRADED_GRACE_SECONDS = 10.0
HTTP_TIMEOUT_SECONDS = 180.0
WARMUP_SECONDS = 2.0

# SPEC §9 targets.
TARGET_BATCH_RATIO = 1.5
TARGET_SINGLE_OVERHEAD_MS = 3.0
TARGET_P99_MS = 25.0
TARGET_P99_CLIENTS = 8


class BenchError(Exception):
    """The bench cannot run as asked (missing dataset, failed training, server down)."""


@dataclass(frozen=True)
class BenchConfig:
    rows: int = 50_000  # training rows
    dataset: str = "demo"  # "demo" (synthetic leads) or "bank" (UCI bank marketing)
    batch_rows: int = 10_000  # records per batch call
    repeat: int = 300  # single-record calls timed per measurement
    batch_runs: int = 5  # batch calls timed per measurement (median reported)
    duration: float = 10.0  # seconds per HTTP load phase
    clients: tuple[int, ...] = (1, 8)
    skip_http: bool = False
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
        return {"n": 0, "p50_ms": float("nan"), "p99_ms": float("nan"), "mean_ms": float("nan")}
    return {
        "n": int(milliseconds.size),
        "p50_ms": round(float(np.percentile(milliseconds, 50)), 3),
        "p99_ms": round(float(np.percentile(milliseconds, 99)), 3),
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env() -> dict[str, str]:
    """The environment `serve` gets: ours, pinned to this process's database, folders and settings."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
            "LEADML_VAR_DIR": str(settings.VAR_DIR),
            "MODEL_DIR": str(settings.STORAGES["models"]["OPTIONS"]["location"]),
            "LEADML_THROTTLE_RATE": THROTTLE_RATE,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class Server:
    """`manage.py serve` as a child process, logging to a file."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    health_status: int | None = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self) -> None:
        """Wait for GET /health to answer 200 (or a lasting 503: degraded but serving)."""
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
        degraded_since: float | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"serve exited with {self.process.returncode}:\n{self.log_tail()}")
            self.health_status = _health_status(self.port)
            if self.health_status == 200:
                return
            if self.health_status == 503:
                degraded_since = degraded_since or time.monotonic()
                if time.monotonic() - degraded_since >= HEALTH_DEGRADED_GRACE_SECONDS:
                    return
            time.sleep(0.25)
        raise BenchError(f"serve did not answer /health within {SERVER_START_TIMEOUT_SECONDS:g}s:\n{self.log_tail()}")

    def stop(self) -> int | None:
        """SIGINT (serve stops gunicorn and the worker in order), then SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=SERVER_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _health_status(port: int) -> int | None:
    connection_ = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection_.request("GET", "/health")
        response = connection_.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection_.close()


@contextmanager
def serving(*, workers: int, log_path: Path) -> Iterator[Server]:
    """Run `manage.py serve` on a free loopback port until the block ends, however it ends."""
    port = free_port()
    argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", str(workers)]
    with log_path.open("wb") as log:
        # Its own process group: a Ctrl-C on our terminal reaches only us, and we stop it once.
        process = subprocess.Popen(
            argv, env=server_env(), cwd=settings.BASE_DIR, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            process_group=0,
        )
    server = Server(port=port, process=process, log_path=log_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@dataclass
class ClientTally:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def _post(
    connection_: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    connection_.request("POST", path, body=body, headers=headers)
    response = connection_.getresponse()
    return response.status, response.read()


def _client_loop(
    *, port: int, headers: dict[str, str], bodies: Sequence[bytes], offset: int, stride: int,
    duration: float, start: threading.Barrier, tally: ClientTally,
) -> None:
    """POST /predict back to back on one connection until `duration` has passed."""
    # http.client reopens the connection by itself when the server closes it
    # (gunicorn's sync workers close after every response).
    connection_ = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_SECONDS)
    index = offset
    start.wait()
    deadline = time.perf_counter() + duration
    try:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                status, _ = _post(connection_, "/predict", bodies[index % len(bodies)], headers)
            except (OSError, http.client.HTTPException) as error:
                connection_.close()
                tally.errors[type(error).__name__] += 1
            else:
                if status == 200:
                    tally.latencies.append(time.perf_counter() - began)
                else:
                    tally.errors[str(status)] += 1
            index += stride
    finally:
        connection_.close()


def http_load(
    *, port: int, headers: dict[str, str], bodies: Sequence[bytes], clients: int, duration: float
) -> dict[str, Any]:
    """Run `clients` concurrent clients for `duration` seconds; latency, throughput, errors."""
    tallies = [ClientTally() for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    shared = {"port": port, "headers": headers, "bodies": bodies, "stride": clients, "duration": duration}
    threads = [
        threading.Thread(
            target=_client_loop, kwargs={**shared, "offset": number, "start": start, "tally": tally}, daemon=True
        )
        for number, tally in enumerate(tallies)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    latencies = [latency for tally in tallies for latency in tally.latencies]
    errors: Counter[str] = sum((tally.errors for tally in tallies), Counter())
    return {
        "clients": clients,
        **latency_summary(latencies),
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "seconds": round(elapsed, 2),
    }


def http_batch(*, port: int, headers: dict[str, str], body: bytes, runs: int) -> dict[str, Any]:
    """POST /predict/batch `runs` times; the median time and how many predictions came back."""
    durations: list[float] = []
    answered = 0
    errors: Counter[str] = Counter()
    for _ in range(runs):
        connection_ = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_SECONDS)
        began = time.perf_counter()
        try:
            status, payload = _post(connection_, "/predict/batch", body, headers)
        except (OSError, http.client.HTTPException) as error:
            errors[type(error).__name__] += 1
            continue
        finally:
            connection_.close()
        if status != 200:
            errors[str(status)] += 1
            continue
        durations.append(time.perf_counter() - began)
        answered += int(json.loads(payload)["total_predictions"])
    figures = runs_summary(durations) if durations else {"runs": 0}
    return figures | {"answered": answered, "errors": sum(errors.values()), "error_kinds": dict(errors)}


def _request_bodies(tenant: str, records: Sequence[dict[str, Any]]) -> list[bytes]:
    return [
        json.dumps({"model_type": LEAD_CONVERSION, "user_id": tenant, "data": record}).encode() for record in records
    ]


def bench_http(*, tenant: str, records: Sequence[dict[str, Any]], config: BenchConfig) -> dict[str, Any]:
    """Serve the API, load /predict with each client count, then /predict/batch; count stored rows."""
    token, key = api_token_create(name="bench", tenant=tenant)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    bodies = _request_bodies(tenant, records[:1000])
    batch_body = json.dumps({"model_type": LEAD_CONVERSION, "user_id": tenant, "data": list(records)}).encode()
    workers = config.workers or settings.WORKERS
    log_path = Path(settings.VAR_DIR) / "bench-serve.log"
    figures: dict[str, Any] = {"workers": workers, "server_log": str(log_path)}
    try:
        with serving(workers=workers, log_path=log_path) as server:
            figures["health_status"] = server.health_status
            started_at = timezone.now()
            # Warm-up (every gunicorn worker loads the model), counted as answered too.
            warmup = http_load(
                port=server.port, headers=headers, bodies=bodies, clients=max(config.clients),
                duration=min(WARMUP_SECONDS, config.duration),
            )
            figures["single"] = [
                http_load(port=server.port, headers=headers, bodies=bodies, clients=clients, duration=config.duration)
                for clients in config.clients
            ]
            figures["batch"] = http_batch(port=server.port, headers=headers, body=batch_body, runs=config.batch_runs)
            figures["answered"] = (
                warmup["ok"] + sum(load["ok"] for load in figures["single"]) + figures["batch"]["answered"]
            )
            figures["stored"] = prediction_count(tenant=tenant, since=started_at)
        figures["server_exit_code"] = server.process.returncode
    finally:
        api_token_revoke(token=token)
    return figures


# --- Targets -------------------------------------------------------------------


@dataclass(frozen=True)
class TargetCheck:
    name: str
    value: str
    target: str
    passed: bool | None  # None: not measured

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "SKIP"}[self.passed]


def _load_for(http_figures: Mapping[str, Any], clients: int, *, largest: bool) -> Mapping[str, Any]:
    """The load run with `clients` clients, else the most (or fewest) clients measured."""
    loads = sorted(http_figures["single"], key=lambda load: load["clients"])
    exact = [load for load in loads if load["clients"] == clients]
    return exact[0] if exact else (loads[-1] if largest else loads[0])


def targets_check(figures: Mapping[str, Any]) -> list[TargetCheck]:
    """Compare the figures with SPEC §9."""
    bare, service, http_figures = figures["bare"], figures["service"], figures.get("http")
    ratio = service["batch"]["median_ms"] / bare["batch"]["median_ms"]
    rows = service["batch_rows"]
    checks = [
        TargetCheck(f"service batch {rows:,} / bare {rows:,}", f"{ratio:.2f}x", f"<= {TARGET_BATCH_RATIO}x",
                    ratio <= TARGET_BATCH_RATIO),
    ]
    stored_ok = service["stored"] == service["answered"]
    if http_figures is None:
        checks += [
            TargetCheck(
                "HTTP single p50 - bare single p50", "not measured", f"<= {TARGET_SINGLE_OVERHEAD_MS:g} ms", None
            ),
            TargetCheck(f"HTTP p99 at {TARGET_P99_CLIENTS} clients, 0 errors", "not measured",
                        f"< {TARGET_P99_MS:g} ms", None),
        ]
    else:
        one = _load_for(http_figures, 1, largest=False)
        overhead = one["p50_ms"] - bare["single"]["p50_ms"]
        many = _load_for(http_figures, TARGET_P99_CLIENTS, largest=True)
        checks += [
            TargetCheck(f"HTTP p50 ({one['clients']} client) - bare single p50", f"{overhead:.2f} ms",
                        f"<= {TARGET_SINGLE_OVERHEAD_MS:g} ms", overhead <= TARGET_SINGLE_OVERHEAD_MS),
            TargetCheck(f"HTTP p99 at {many['clients']} clients, errors", f"{many['p99_ms']:.2f} ms, {many['errors']}",
                        f"< {TARGET_P99_MS:g} ms, 0", many["p99_ms"] < TARGET_P99_MS and many["errors"] == 0),
        ]
        stored_ok = stored_ok and http_figures["stored"] == http_figures["answered"]
    checks.append(TargetCheck("stored = answered", "yes" if stored_ok else "no", "yes", stored_ok))
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
        log(f"Timing HTTP ({config.duration:g} s per client count) ...")
        figures["http"] = bench_http(tenant=config.tenant, records=data.records, config=config)
    figures["targets"] = [asdict(check) | {"verdict": check.verdict} for check in targets_check(figures)]
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
        "SPEC §9 targets",
    ]
    lines += [
        f"  {check['verdict']:5} {check['name']:48} {check['value']:>18}   (target {check['target']})"
        for check in figures["targets"]
    ]
    return lines


def _http_lines(http_figures: Mapping[str, Any], rows: int) -> list[str]:
    lines = [
        "",
        f"HTTP (manage.py serve, gunicorn {http_figures['workers']} workers; /health {http_figures['health_status']}; "
        f"server exit code {http_figures.get('server_exit_code')}; log {http_figures['server_log']})",
        f"{'':36}{'p50':>12}{'p99':>12}{'req/s':>10}{'ok':>8}{'errors':>8}",
    ]
    for load in http_figures["single"]:
        label = f"POST /predict, {load['clients']} client{'s' * (load['clients'] > 1)}"
        lines.append(
            f"{label:36}{_ms(load['p50_ms']):>12}{_ms(load['p99_ms']):>12}{load['requests_per_s']:>10,.1f}"
            f"{load['ok']:>8,}{load['errors']:>8,}"
            + (f"  {load['error_kinds']}" if load["errors"] else "")
        )
    batch = http_figures["batch"]
    lines.append(
        f"{f'POST /predict/batch, {rows:,} rows':36}{'':24}median {_ms(batch.get('median_ms'))} "
        f"of {batch['runs']} runs, {batch['errors']} errors"
    )
    return lines

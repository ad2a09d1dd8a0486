"""`manage.py bench` over HTTP: `/predict` against the floor at each client count, then `/predict/batch`.

`bench_http` serves the API with `manage.py serve` (bench/server.py: the child process,
the keep-alive load clients, the workers' memory and CPU) and measures `/predict` with
reasons and the bench floor (bench/floor.py) alternately, so that whatever else the
machine does weighs on both sides alike; then the batch, and gunicorn's access log on
against off. Every answer that stores a prediction is counted against the rows stored.
"""
from __future__ import annotations

import http.client
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from bench.common import latency_summary, prediction_count, ratio, runs_summary
from bench.floor import FLOOR_PATH
from bench.server import (
    HTTP_TIMEOUT_SECONDS,
    LoadTally,
    Server,
    client_cpu_seconds,
    database_cpu_seconds,
    load_run,
    post,
    serving,
    worker_cpu_seconds,
    worker_rss_mib,
)
from bench.types import BenchConfig
from leadml.ml.types import LEAD_CONVERSION
from registry.services import api_token_create, api_token_revoke

WARMUP_SECONDS = 2.0
# Each HTTP comparison alternates its two sides in this many rounds, so that whatever
# else the shared machine does at the time falls on both sides alike.
LOAD_ROUNDS = 4
PREDICT_PATH = "/predict"
FLOOR = f"/{FLOOR_PATH}"
DATABASE_LOCKED = "database is locked"


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


def request_bodies(tenant: str, records: Sequence[dict[str, Any]]) -> list[bytes]:
    return [
        json.dumps({"model_type": LEAD_CONVERSION, "user_id": tenant, "data": record}).encode() for record in records
    ]


def batch_body(tenant: str, records: Sequence[dict[str, Any]]) -> bytes:
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
        "worker_cpu_ms": _per_answer_ms(tally.worker_cpu_seconds, tally),
        "database_cpu_ms": (
            None if tally.database_cpu_seconds is None else _per_answer_ms(tally.database_cpu_seconds, tally)
        ),
        "client_cpu_ms": _per_answer_ms(tally.client_cpu_seconds, tally),
        "stored": stored,
        "rss_mib": rss_mib,
    }


def _per_answer_ms(seconds: float, tally: LoadTally) -> float:
    return round(1000 * seconds / len(tally.latencies), 3) if tally.latencies else float("nan")


def _measured_round(session: HttpSession, target: LoadTarget, *, clients: int, seconds: float) -> tuple[LoadTally, int]:
    """One timed load of `target`; the rows it stored, counted outside the timed part."""
    before = prediction_count(tenant=session.tenant) if target.stores else 0
    workers, database, clients_ = worker_cpu_seconds(target.server), database_cpu_seconds(), client_cpu_seconds()
    tally = load_run(
        port=target.server.port, path=target.path, headers=session.headers, bodies=session.bodies,
        clients=clients, duration=seconds,
    )
    tally.worker_cpu_seconds = worker_cpu_seconds(target.server) - workers
    tally.client_cpu_seconds = client_cpu_seconds() - clients_
    database_after = database_cpu_seconds()
    tally.database_cpu_seconds = None if database is None or database_after is None else database_after - database
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
    throughput_cost = 100.0 * (1.0 - ratio(on["requests_per_s"], off["requests_per_s"]))
    cpu_cost = 100.0 * (ratio(on["worker_cpu_ms"], off["worker_cpu_ms"]) - 1.0)
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
                          request_bodies(tenant, records[:1000]))
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
            figures["batch"] = http_batch(session, server, body=batch_body(tenant, records), runs=config.batch_runs)
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

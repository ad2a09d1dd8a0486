"""Measure GET /monitoring on a large prediction log (target: 1,000,000 predictions in under 2 s).

`run_monitoring_bench` makes or reuses the prediction log of a dedicated tenant
(bench/monitoring_data.py: a small lead model trained on demo leads, N of its
predictions spread over the last days, outcomes for some of the scored leads), then
times the monitoring report for a few windows, through the service and through the API.
`monitoring_report_lines` turns the figures into the printed report.

The data is kept: a rerun that asks for the same counts reuses it, so only the first
run pays for the inserts. Its windows move with the clock, though (the default is the
last 7 days), so a rerun days later finds fewer rows in them; `fresh` starts over.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from bench.common import bench_tenant_check, latency_summary, machine_info
from bench.monitoring_data import data_summary, monitoring_data_prepare
from bench.types import BenchError, MonitoringBenchConfig
from leadml.ml.types import LEAD_CONVERSION
from monitoring.services.report import (
    monitoring_report,
    monitoring_version,
    window_resolve,
)
from registry.services import api_token_create, api_token_revoke

# The requirement: GET /monitoring answers in under 2 s on 1,000,000 stored predictions.
TARGET_SECONDS = 2.0
TARGET_PREDICTIONS = 1_000_000


@dataclass(frozen=True)
class Scenario:
    label: str
    params: dict[str, Any]


def scenarios(*, days: int, now: datetime) -> list[Scenario]:
    """The windows timed: the default, the last N predictions, and the whole span."""
    return [
        Scenario(f"default ({settings.LEADML_MONITORING_WINDOW_DAYS} days)", {}),
        Scenario("last=1000", {"last": 1000}),
        Scenario("last=100000", {"last": 100_000}),
        Scenario(
            f"since/until, {days} days",
            {"since": (now - timedelta(days=days)).isoformat(), "until": now.isoformat()},
        ),
    ]


# --- Timing --------------------------------------------------------------------


@dataclass
class QueryTally:
    count: int = 0
    seconds: float = 0.0


@contextmanager
def queries_timed() -> Iterator[QueryTally]:
    """Count the queries run inside and sum their time in the database driver."""
    tally = QueryTally()

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            tally.seconds += time.perf_counter() - started
            tally.count += 1

    with connection.execute_wrapper(wrapper):
        yield tally


@dataclass
class CallTimes:
    seconds: list[float] = field(default_factory=list)
    query_seconds: list[float] = field(default_factory=list)
    queries: int = 0

    def summary(self) -> dict[str, Any]:
        timed = latency_summary(self.seconds)
        return {
            "n": timed["n"],
            "p50_ms": timed["p50_ms"],
            "max_ms": round(max(self.seconds) * 1000.0, 3) if self.seconds else float("nan"),
            "query_p50_ms": latency_summary(self.query_seconds)["p50_ms"],
            "queries": self.queries,
        }


def _timed(call: Callable[[], Any], times: CallTimes) -> Any:
    with queries_timed() as tally:
        started = time.perf_counter()
        result = call()
        elapsed = time.perf_counter() - started
    times.seconds.append(elapsed)
    times.query_seconds.append(tally.seconds)
    times.queries = tally.count
    return result


def _service_call(*, tenant: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """What MonitoringApi.get does, minus the request: version, window, report."""
    version = monitoring_version(tenant=tenant, model_type=LEAD_CONVERSION, model_name=None)
    since, until = (datetime.fromisoformat(params[key]) if key in params else None for key in ("since", "until"))
    window = window_resolve(version=version, since=since, until=until, last=params.get("last"))
    return monitoring_report(version=version, window=window)


def bench_scenario(*, tenant: str, client: APIClient, scenario: Scenario, repeat: int) -> dict[str, Any]:
    """Time one window `repeat` times through the service and through the API."""
    service, http = CallTimes(), CallTimes()
    cold = CallTimes()
    report = _timed(lambda: _service_call(tenant=tenant, params=scenario.params), cold)
    for _ in range(repeat):
        _timed(lambda: _service_call(tenant=tenant, params=scenario.params), service)
    path = f"/monitoring/{tenant}/{LEAD_CONVERSION}" + (f"?{urlencode(scenario.params)}" if scenario.params else "")
    for _ in range(repeat):
        response = _timed(lambda: client.get(path), http)
        if response.status_code != 200:
            raise BenchError(f"GET {path} answered {response.status_code}: {response.content[:500]!r}")
    window = report["window"]
    return {
        "label": scenario.label,
        "params": scenario.params,
        "predictions": window["predictions"],
        "sampled": window["sampled"],
        "with_outcomes": window["with_outcomes"],
        "first_call_ms": round(cold.seconds[0] * 1000.0, 1),
        "service": service.summary(),
        "http": http.summary(),
    }


# --- The whole run -------------------------------------------------------------


def run_monitoring_bench(
    config: MonitoringBenchConfig, *, log: Callable[[str], None] = lambda message: None
) -> dict[str, Any]:
    """Make (or reuse) the prediction log, time the monitoring report, return every figure."""
    bench_tenant_check(config.tenant)
    if not 0 < config.outcomes <= config.predictions:
        raise BenchError("outcomes must be between 1 and the number of predictions")
    figures: dict[str, Any] = {"config": asdict(config), "machine": machine_info()}
    version, figures["setup"] = monitoring_data_prepare(config, log=log)
    figures["model"] = {
        "name": version.name, "version": version.version, "algorithm": version.algorithm,
        "trained_rows": version.trained_rows, "roc_auc": version.metrics.get("roc_auc"),
    }
    figures["data"] = data_summary(version=version, tenant=config.tenant)
    figures["sample_rows"] = settings.LEADML_MONITORING_SAMPLE_ROWS
    token, key = api_token_create(name="bench monitoring", tenant=config.tenant)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    try:
        figures["scenarios"] = []
        for scenario in scenarios(days=config.days, now=timezone.now()):
            log(f"Timing {scenario.label} ...")
            figures["scenarios"].append(
                bench_scenario(tenant=config.tenant, client=client, scenario=scenario, repeat=config.repeat)
            )
    finally:
        api_token_revoke(token=token)
    return figures


# --- Report --------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:,.1f} ms"


def monitoring_report_lines(figures: Mapping[str, Any]) -> list[str]:
    """Render the figures as the text the command prints."""
    machine, model, data, setup = figures["machine"], figures["model"], figures["data"], figures["setup"]
    database = machine["database"]
    if setup["reused"]:
        made = "reused from an earlier run"
    else:
        made = (
            f"made now: training {setup['train_s']} s, leads {setup['generate_s']} s, scoring {setup['score_s']} s, "
            f"insert {setup['insert_s']} s, outcomes {setup['outcomes_s']} s, vacuum/analyze {setup['analyze_s']} s"
        )
    software = (
        f"Python {machine['python']}, scikit-learn {machine['sklearn']}, {database['vendor']} {database['version']}, "
        f"OMP_NUM_THREADS={machine['omp_num_threads']}"
    )
    trained = f"{model['trained_rows']:,} rows, ROC-AUC {model['roc_auc']}"
    stored = f"{data['predictions']:,} predictions of this version ({data['table_rows']:,} in the table)"
    span = f"{data['oldest']} .. {data['newest']}"
    header = (
        f"{'window':24}{'rows':>11}{'sampled':>9}{'labelled':>10}{'1st call':>11}"
        f"{'service p50':>13}{'max':>11}{'SQL p50':>11}{'queries':>9}{'HTTP p50':>11}{'max':>11}"
    )
    lines = [
        f"leadml monitoring bench, {machine['date']}",
        f"machine   {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM",
        f"software  {software}",
        f"model     {model['name']} v{model['version']} {model['algorithm']} ({trained})",
        f"data      {stored}, {span}; {data['outcomes']:,} outcomes",
        f"          {made}",
        f"sample    at most {figures['sample_rows']:,} predictions per window (LEADML_MONITORING_SAMPLE_ROWS)",
        "",
        header,
    ]
    for row in figures["scenarios"]:
        service, http = row["service"], row["http"]
        lines.append(
            f"{row['label']:24}{row['predictions']:>11,}{row['sampled']:>9,}{row['with_outcomes']:>10,}"
            f"{_ms(row['first_call_ms']):>11}{_ms(service['p50_ms']):>13}{_ms(service['max_ms']):>11}"
            f"{_ms(service['query_p50_ms']):>11}{service['queries']:>9}{_ms(http['p50_ms']):>11}{_ms(http['max_ms']):>11}"
        )
    repeat = figures["config"]["repeat"]
    note = (
        f"  ({repeat} calls each way after one warm-up call ('1st call', service); HTTP: GET through the API "
        "with a token, in-process test client; SQL: time inside cursor.execute)"
    )
    lines += [note, ""]
    slowest = max(row["http"]["max_ms"] for row in figures["scenarios"])
    if data["predictions"] >= TARGET_PREDICTIONS:
        verdict = "PASS" if slowest < TARGET_SECONDS * 1000.0 else "MISS"
        lines.append(
            f"target    {verdict}  slowest HTTP call {_ms(slowest)} on {data['predictions']:,} predictions "
            f"(target < {TARGET_SECONDS:g} s on {TARGET_PREDICTIONS:,})"
        )
    else:
        lines.append(f"target    SKIP  {data['predictions']:,} predictions, the target is for {TARGET_PREDICTIONS:,}")
    return lines

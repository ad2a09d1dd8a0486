"""`manage.py bench` on tiny configurations: every figure is produced (the real run is manual; no timings asserted)."""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import clear_url_caches
from rest_framework.test import APIClient

import leadml.urls
from bench.server import database_url
from bench.types import BENCH_TENANT
from predictions.models import Prediction

BASE_DIR = Path(__file__).resolve().parents[2]

REPEAT = 5
BATCH_ROWS = 150
BATCH_RUNS = 2


@pytest.mark.single_database
@pytest.mark.django_db
def test_bench_in_process_reports_every_figure_and_stores_every_answer(tmp_path: Path) -> None:
    json_path = tmp_path / "bench.json"
    report = StringIO()
    call_command(
        "bench", "--rows", "600", "--skip-http", "--repeat", str(REPEAT), "--batch-rows", str(BATCH_ROWS),
        "--batch-runs", str(BATCH_RUNS), "--json", str(json_path), stdout=report, stderr=StringIO(),
    )

    figures = json.loads(json_path.read_text())
    for phase in ("bare", "service"):
        assert figures[phase]["single"]["n"] == REPEAT
        assert 0 < figures[phase]["single"]["p50_ms"] <= figures[phase]["single"]["p99_ms"]
        assert figures[phase]["batch"]["runs"] == BATCH_RUNS
        assert figures[phase]["batch"]["median_ms"] > 0
    service = figures["service"]
    # One warm-up call, the single calls with and without reasons, the timed batches and the explained batch.
    assert service["answered"] == 1 + 2 * REPEAT + BATCH_RUNS * BATCH_ROWS + BATCH_ROWS
    assert service["single_unexplained"]["n"] == REPEAT
    assert service["stored"] == service["answered"]
    assert "http" not in figures
    verdicts = {check["name"]: check["verdict"] for check in figures["targets"]}
    assert verdicts["stored = answered, every phase"] == "PASS"
    assert verdicts[f"batch {BATCH_ROWS} in-process / bare predict_proba"] in {"PASS", "MISS"}
    # Everything measured against the floor or over HTTP needs the server.
    skipped = {name for name, verdict in verdicts.items() if verdict == "SKIP"}
    assert skipped == {name for name in verdicts if "/predict" in name or "HTTP" in name or "SQLite" in name}
    _assert_every_miss_is_explained(figures)
    assert figures["machine"]["database"]["vendor"]
    # Storing the newest batch's rows again, alone, to say what the batch targets leave:
    # timed, and rolled back (the tenant holds exactly the predictions answered).
    budget = figures["budget"]
    assert budget["predict"] is None  # it needs the floor, measured over HTTP
    assert budget["batch"]["rows"] == BATCH_ROWS and budget["batch"]["store_ms"] > 0
    assert budget["batch"]["store_ratio"] == pytest.approx(
        budget["batch"]["store_ms"] / figures["bare"]["batch"]["median_ms"], abs=0.01
    )
    assert (budget["batch"]["database_cpu_ms"] is None) == (connection.vendor != "postgresql")
    assert Prediction.objects.filter(tenant=BENCH_TENANT).count() == service["answered"]
    text = report.getvalue()
    assert "bare predict_proba" in text and "service predictions_make" in text and "targets (" in text
    assert f"batch {BATCH_ROWS:,}: storing its rows alone" in text


def _assert_every_miss_is_explained(figures: dict) -> None:
    missed = {check["topic"] for check in figures["targets"] if check["verdict"] == "MISS"}
    explained = figures.get("where_the_time_goes", {})
    assert missed == set(explained)
    for topic, breakdown in explained.items():
        if topic != "errors":
            assert breakdown["total_ms"] > 0 and breakdown["chain"], (topic, breakdown)


HTTP_WORKERS = 1
HTTP_BATCH_ROWS = 50


def _bench_database_url(tmp_path: Path, env: dict[str, str]) -> str:
    """The database the bench subprocess uses: pytest's own on PostgreSQL, else a migrated SQLite file."""
    if connection.vendor == "postgresql":
        return database_url()  # the test database: committed rows are flushed after the test
    url = f"sqlite:///{tmp_path / 'bench.sqlite3'}"
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR,
                   env={**env, "DATABASE_URL": url}, check=True, capture_output=True, timeout=300)
    return url


@pytest.mark.single_database
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the workers' memory from Linux's /proc")
@pytest.mark.django_db(transaction=True)
def test_bench_over_http_reports_the_floor_memory_and_every_target(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key not in {"REDIS_URL", "LEADML_ACCESS_LOG"}}
    # Real settings (the test settings keep models in a folder of their own), a folder of its own.
    env |= {"DJANGO_SETTINGS_MODULE": "leadml.settings.base", "LEADML_VAR_DIR": str(tmp_path),
            "MODEL_DIR": str(tmp_path / "models"), "PYTHONUNBUFFERED": "1"}
    env["DATABASE_URL"] = _bench_database_url(tmp_path, env)
    json_path = tmp_path / "bench.json"
    finished = subprocess.run(
        [sys.executable, "manage.py", "bench", "--rows", "400", "--repeat", "3", "--batch-rows", str(HTTP_BATCH_ROWS),
         "--batch-runs", "1", "--duration", "0.4", "--workers", str(HTTP_WORKERS), "--json", str(json_path)],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]

    figures = json.loads(json_path.read_text())
    http = figures["http"]
    loads = {(load["label"], load["clients"]): load for load in http["loads"]}
    assert set(loads) == {(label, clients) for label in ("predict", "floor") for clients in (1, 8)}
    for (label, _), load in loads.items():
        assert load["ok"] > 0 and load["errors"] == 0, load
        assert 0 < load["p50_ms"] <= load["p99_ms"] <= load["max_ms"] and load["requests_per_s"] > 0
        assert len(load["rss_mib"]) == HTTP_WORKERS and min(load["rss_mib"]) > 0
        assert load["worker_cpu_ms"] >= 0  # clock ticks: a short load may not last one
        assert load["client_cpu_ms"] > 0  # the bench's own threads, in microseconds
        # SQLite works inside the workers; a PostgreSQL on this machine is watched in /proc.
        assert load["database_cpu_ms"] == 0.0 if connection.vendor == "sqlite" else load["database_cpu_ms"] >= 0
        assert load["stored"] == (load["ok"] if label == "predict" else None)
    assert http["batch"]["stored"] == http["batch"]["answered"] == HTTP_BATCH_ROWS
    assert len(http["batch"]["rss_mib"]) == HTTP_WORKERS
    access_log = http["access_log_check"]
    assert access_log["on"]["requests_per_s"] > 0 and access_log["off"]["requests_per_s"] > 0
    assert access_log["default_on"] is False and "cpu_cost_pct" in access_log
    assert http["access_log"] is False
    assert http["stored"] == http["answered"] and http["server_exit_code"] == 0
    verdicts = {check["name"]: check["verdict"] for check in figures["targets"]}
    sqlite = [name for name in verdicts if name.startswith("SQLite")]
    assert verdicts.pop(sqlite[0]) == ("SKIP" if connection.vendor == "postgresql" else "PASS")
    assert set(verdicts.values()) <= {"PASS", "MISS"}
    assert verdicts["stored = answered, every phase"] == "PASS"
    _assert_every_miss_is_explained(figures)
    # What the 8-client share leaves /predict: the floor's CPU per answer, plus storing one
    # row and scoring one record with its reasons, each measured alone.
    budget = figures["budget"]["predict"]
    floor = loads[("floor", 8)]
    assert budget["floor_cpu_ms"] == pytest.approx(
        floor["worker_cpu_ms"] + floor["database_cpu_ms"] + floor["client_cpu_ms"], abs=0.002
    )
    assert budget["allowed_extra_ms"] == pytest.approx(budget["floor_cpu_ms"] * (1 / 0.7 - 1), abs=0.002)
    assert budget["store_cpu_ms"] > 0 and budget["score_cpu_ms"] > 0 and budget["explained"] is True
    least = budget["floor_cpu_ms"] + budget["store_cpu_ms"] + budget["store_database_cpu_ms"] + budget["score_cpu_ms"]
    assert budget["best_share"] == pytest.approx(budget["floor_cpu_ms"] / least, abs=0.001)
    assert figures["budget"]["batch"]["rows"] == HTTP_BATCH_ROWS
    text = finished.stdout
    assert "POST /bench/floor, 8 clients" in text and "RSS per worker" in text and "access log, floor" in text
    assert "what the targets leave" in text and "at best" in text


@pytest.mark.single_database
@pytest.mark.django_db
def test_bench_monitoring_times_every_window_and_reuses_its_data(tmp_path: Path, settings) -> None:
    # Fewer than the window holds, so the time-stratified sample is taken too.
    settings.LEADML_MONITORING_SAMPLE_ROWS = 50
    arguments = [
        "bench_monitoring", "--predictions", "300", "--outcomes", "40", "--training-rows", "600",
        "--chunk-rows", "100", "--repeat", "1",
    ]
    json_path = tmp_path / "monitoring.json"
    report = StringIO()
    call_command(*arguments, "--json", str(json_path), stdout=report, stderr=StringIO())

    figures = json.loads(json_path.read_text())
    assert figures["setup"]["reused"] is False
    assert figures["setup"]["outcomes_accepted"] == 40
    assert figures["data"]["predictions"] == 300
    windows = {row["label"]: row for row in figures["scenarios"]}
    assert windows["last=1000"]["predictions"] == 300
    assert windows["since/until, 30 days"]["sampled"] == 50
    assert windows["since/until, 30 days"]["with_outcomes"] == 40
    for row in figures["scenarios"]:
        assert row["service"]["n"] == row["http"]["n"] == 1
        assert row["service"]["p50_ms"] > 0 and row["http"]["p50_ms"] > 0
    text = report.getvalue()
    assert "last=100000" in text and "service p50" in text and "HTTP p50" in text and "SKIP" in text

    rerun = StringIO()
    call_command(*arguments, stdout=rerun, stderr=StringIO())
    assert "reused from an earlier run" in rerun.getvalue()


def _reload_urls() -> None:
    # The floor's route is decided when leadml.urls is imported, as in a served process.
    importlib.reload(leadml.urls)
    clear_url_caches()


@pytest.fixture
def floor_enabled(settings) -> Iterator[None]:
    settings.LEADML_BENCH_FLOOR = True
    _reload_urls()
    yield
    settings.LEADML_BENCH_FLOOR = False
    _reload_urls()


@pytest.mark.django_db
def test_floor_is_not_routed_without_the_setting(client_for: Callable[[str | None], APIClient], tenant_key: str) -> None:
    api = client_for(tenant_key)
    assert api.get("/bench/floor").status_code == 404
    assert api.post("/bench/floor", {"data": {}}, format="json").status_code == 404


@pytest.mark.django_db
def test_floor_answers_a_constant_behind_the_token_check(
    floor_enabled: None, client_for: Callable[[str | None], APIClient], tenant_key: str
) -> None:
    assert client_for(None).get("/bench/floor").status_code == 401
    assert client_for("not-a-token").post("/bench/floor", {"data": {}}, format="json").status_code == 401
    api = client_for(tenant_key)
    for response in (api.get("/bench/floor"), api.post("/bench/floor", {"data": {"a": 1}}, format="json")):
        assert response.status_code == 200
        assert response.json() == {"success": True, "floor": True}
    assert "/bench/floor" not in api.get("/api/schema/", {"format": "json"}).json()["paths"]


def _load(label: str, clients: int, *, rps: float, p50: float, p99: float, top: float, errors: int = 0) -> dict:
    ok = int(rps * 10)
    return {"label": label, "path": f"/{label}", "clients": clients, "requests_per_s": rps, "p50_ms": p50,
            "p99_ms": p99, "max_ms": top, "errors": errors, "ok": ok, "stored": ok if label == "predict" else None,
            "error_kinds": {"500": errors} if errors else {}, "error_samples": {}}


def test_targets_are_ratios_to_the_floor_of_the_same_run() -> None:
    from bench.targets import targets_check

    figures = {
        "machine": {"database": {"vendor": "sqlite"}},
        "bare": {"batch": {"median_ms": 100.0}},
        "service": {"batch": {"median_ms": 150.0}, "batch_rows": 10_000, "stored": 5, "answered": 5},
        "http": {
            "loads": [
                _load("predict", 1, rps=100, p50=8.0, p99=12.0, top=20.0),
                _load("floor", 1, rps=300, p50=5.0, p99=8.0, top=15.0),
                _load("predict", 8, rps=69, p50=40.0, p99=60.0, top=101.0),
                _load("floor", 8, rps=100, p50=10.0, p99=30.0, top=50.0, errors=1),
            ],
            "batch": {"median_ms": 250.0},
            "stored": 10, "answered": 10,
        },
    }
    verdicts = {check.name: check.verdict for check in targets_check(figures)}
    assert verdicts == {
        "/predict, 8 clients: req/s / floor's": "MISS",  # 0.69 < 0.70
        "/predict, 8 clients: p99 / floor's p99": "PASS",  # exactly 2x
        "/predict, 8 clients: slowest request": "MISS",  # 101 ms
        "/predict, 8 clients: errors; stored = answered": "PASS",
        "/predict, 1 client: p50 - floor's p50": "PASS",  # +3 ms exactly
        "batch 10,000 in-process / bare predict_proba": "PASS",  # 1.5x exactly
        "batch 10,000 over HTTP / bare predict_proba": "PASS",  # 2.5x exactly
        "SQLite: errors at 8 clients (/predict, floor)": "MISS",  # the floor's error counts too
        "stored = answered, every phase": "PASS",
    }

"""`manage.py bench` on a tiny configuration, in-process only (the real run is manual)."""
from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import clear_url_caches
from rest_framework.test import APIClient

import leadml.urls

REPEAT = 5
BATCH_ROWS = 150
BATCH_RUNS = 2


@pytest.mark.django_db
def test_bench_reports_every_figure_and_stores_every_answer(tmp_path: Path) -> None:
    json_path = tmp_path / "bench.json"
    report = StringIO()
    call_command(
        "bench", "--rows", "1000", "--skip-http", "--repeat", str(REPEAT), "--batch-rows", str(BATCH_ROWS),
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
    assert verdicts["stored = answered"] == "PASS"
    assert sorted(set(verdicts.values()) - {"PASS", "MISS"}) == ["SKIP"]  # the HTTP targets
    assert figures["machine"]["database"]["vendor"]
    text = report.getvalue()
    assert "bare predict_proba" in text and "service predictions_make" in text and "SPEC §9 targets" in text


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

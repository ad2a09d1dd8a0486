"""`manage.py bench` on a tiny configuration, in-process only (the real run is manual)."""
from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

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

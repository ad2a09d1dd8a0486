"""Uploads are bounded before any parsing, written in short transactions, and never half-visible."""
from __future__ import annotations

import io
import time
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from tests.conftest import TENANT
from training.models import Dataset, DatasetRow
from training.selectors import labelled_row_count
from training.services import datasets as dataset_services

UPLOAD = {"user_id": TENANT, "model_type": "lead_conversion", "name": "wide", "target": "status",
          "positive_values": ["customer", "won"]}


def _csv(columns: int, rows: int) -> io.BytesIO:
    header = ",".join(["status", *(f"c{i}" for i in range(columns - 1))])
    lines = [header] + [",".join(["won" if r % 2 else "lost", *("1" for _ in range(columns - 1))]) for r in range(rows)]
    upload = io.BytesIO("\n".join(lines).encode())
    upload.name = "wide.csv"
    return upload


def test_a_csv_wider_than_the_limit_is_refused_from_its_header(api: APIClient) -> None:
    started = time.perf_counter()
    response = api.post("/datasets", {**UPLOAD, "file": _csv(10_001, 60)}, format="multipart")
    assert response.status_code == 413, response.content
    assert "10001 columns" in response.json()["error"] and "500" in response.json()["error"]
    assert time.perf_counter() - started < 20  # no leakage scan over ten thousand columns
    assert not Dataset.objects.exists()


def test_json_rows_wider_than_the_limit_are_refused(api: APIClient) -> None:
    rows = [{"status": "won" if i % 2 else "lost", **{f"c{j}": j for j in range(600)}} for i in range(60)]
    response = api.post("/datasets", {**UPLOAD, "rows": rows}, format="json")
    assert response.status_code == 413 and "rows" in response.json()["details"]


@override_settings(LEADML_MAX_VALUE_CHARS=100)
def test_a_value_longer_than_the_limit_is_refused_naming_it(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    rows = [dict(row) for row in lead_rows[:80]]
    rows[7]["company"] = "x" * 101
    response = api.post("/datasets", {**UPLOAD, "rows": rows}, format="json")
    assert response.status_code == 400
    assert "rows[7].company" in response.json()["details"]
    single = api.post("/predict", {"model_type": "lead_conversion", "user_id": TENANT,
                                   "data": {"notes": "y" * 101}}, format="json")
    assert single.status_code == 400 and "notes" in single.json()["details"]


def test_rows_are_written_in_short_transactions_under_a_dataset_nothing_reads_yet(
    db: None, lead_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int]] = []
    original = DatasetRow.objects.bulk_create

    def watching(rows: Any, *args: Any, **kwargs: Any) -> Any:
        dataset = Dataset.objects.get()
        seen.append((dataset.status, labelled_row_count(tenant=TENANT, model_type="lead_conversion")))
        return original(rows, *args, **kwargs)

    monkeypatch.setattr(DatasetRow.objects, "bulk_create", watching)
    monkeypatch.setattr(dataset_services, "ROW_INSERT_BATCH", 100)
    dataset = dataset_services.dataset_create(
        tenant=TENANT, model_type="lead_conversion", name="leads", target="status", rows=list(lead_rows),
        positive_values=["customer", "won"],
    )
    assert len(seen) == 4  # 400 rows, 100 per transaction
    assert all(status == Dataset.Status.LOADING and visible == 0 for status, visible in seen)
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.READY
    assert labelled_row_count(tenant=TENANT, model_type="lead_conversion") == 400


def test_a_failure_while_writing_leaves_no_dataset_and_no_rows(
    db: None, lead_rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = DatasetRow.objects.bulk_create
    calls = {"count": 0}

    def failing_second(rows: Any, *args: Any, **kwargs: Any) -> Any:
        calls["count"] += 1
        if calls["count"] == 2:
            raise RuntimeError("disk full")
        return original(rows, *args, **kwargs)

    monkeypatch.setattr(DatasetRow.objects, "bulk_create", failing_second)
    monkeypatch.setattr(dataset_services, "ROW_INSERT_BATCH", 100)
    with pytest.raises(RuntimeError):
        dataset_services.dataset_create(
            tenant=TENANT, model_type="lead_conversion", name="leads", target="status", rows=list(lead_rows),
            positive_values=["customer", "won"],
        )
    assert not Dataset.objects.exists() and not DatasetRow.objects.exists()

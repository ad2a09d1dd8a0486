"""`POST /datasets` and `GET /datasets/{id}`: CSV and JSON uploads, validation, limits."""
from __future__ import annotations

import codecs
import csv
import io
import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.conftest import TENANT
from training.models import Dataset, DatasetRow

POSITIVE = ("customer", "won")
# A real PNG header: binary bytes, NUL included.
PNG_BYTES = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"


def balanced_leads(lead_rows: list[dict[str, Any]], positives: int = 30, negatives: int = 30) -> list[dict[str, Any]]:
    pos = [row for row in lead_rows if row["status"] in POSITIVE][:positives]
    neg = [row for row in lead_rows if row["status"] not in POSITIVE][:negatives]
    return pos + neg


def csv_text(rows: list[dict[str, Any]], delimiter: str = ",") -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def upload(content: str | bytes, name: str = "leads.csv") -> SimpleUploadedFile:
    data = content.encode() if isinstance(content, str) else content
    return SimpleUploadedFile(name, data, content_type="text/csv")


def lead_form(file: SimpleUploadedFile, **extra: Any) -> dict[str, Any]:
    return {
        "user_id": TENANT, "model_type": "lead_conversion", "name": "crm export", "target": "status",
        "positive_values": json.dumps(list(POSITIVE)), "file": file, **extra,
    }


def lead_json(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "user_id": TENANT, "model_type": "lead_conversion", "name": "crm rows", "target": "status",
        "positive_values": list(POSITIVE), "rows": rows, **extra,
    }


def counts() -> tuple[int, int]:
    return Dataset.objects.count(), DatasetRow.objects.count()


def assert_rejected(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False and body["error"] and isinstance(body["details"], dict)
    assert counts() == (0, 0)
    return body


# --- accepted uploads ------------------------------------------------------------------


def test_csv_upload_is_201_with_summary_and_quality_report(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    rows = balanced_leads(lead_rows, positives=25, negatives=35)
    response = api.post("/datasets", lead_form(upload(csv_text(rows))), format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["success"] is True
    assert body["rows"] == 60 and body["labelled_rows"] == 60
    assert body["columns"] == list(rows[0])
    assert body["positive_values"] == list(POSITIVE)
    report = body["quality_report"]
    assert report["rows"] == 60
    # Missing share per feature column, target excluded; company_size has gaps in the demo data.
    assert set(report["missing_share"]) == set(rows[0]) - {"status"}
    expected_missing = sum(row["company_size"] is None for row in rows) / 60
    assert report["missing_share"]["company_size"] == pytest.approx(expected_missing, abs=1e-4)
    assert report["missing_share"]["email"] == 0.0
    assert report["target"]["positive"] == 25 and report["target"]["negative"] == 35
    assert "constant_columns" in report and "duplicate_rows" in report and "leakage_suspects" in report
    dataset = Dataset.objects.get(pk=body["dataset_id"])
    assert dataset.tenant == TENANT and dataset.source_filename == "leads.csv"


def test_json_rows_upload_is_201(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    rows = balanced_leads(lead_rows, positives=20, negatives=40)
    response = api.post("/datasets", lead_json(rows), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["rows"] == 60
    assert body["quality_report"]["target"] == {"positive": 20, "negative": 40, "positive_rate": pytest.approx(1 / 3, abs=1e-4)}


def test_positive_values_as_comma_list_in_multipart(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    rows = balanced_leads(lead_rows)
    response = api.post("/datasets", lead_form(upload(csv_text(rows)), positive_values="customer, won"), format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["positive_values"] == ["customer", "won"]
    assert body["quality_report"]["target"]["positive"] == 30


def test_positive_values_choose_what_converted(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    # Only "won" counts as converted: fewer positives than with both values.
    rows = balanced_leads(lead_rows)
    won = sum(row["status"] == "won" for row in rows)
    response = api.post("/datasets", lead_form(upload(csv_text(rows)), positive_values='["won"]'), format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["quality_report"]["target"]["positive"] == won < 30


def test_semicolon_separated_csv_is_read(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    rows = balanced_leads(lead_rows)
    response = api.post("/datasets", lead_form(upload(csv_text(rows, delimiter=";"))), format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["columns"] == list(rows[0])
    assert body["rows"] == 60
    stored = DatasetRow.objects.get(dataset_id=body["dataset_id"], row_number=0).data
    assert stored["email"] == rows[0]["email"] and stored["lead_score"] == rows[0]["lead_score"]


def test_csv_with_lone_carriage_returns_is_read(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    # Old spreadsheet exports end lines in a bare \r: the header check read the whole file as one line.
    rows = balanced_leads(lead_rows)
    text = "\r".join(csv_text(rows).splitlines()) + "\r"
    response = api.post("/datasets", lead_form(upload(text)), format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["columns"] == list(rows[0]) and response.json()["rows"] == 60


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_a_utf16_csv_with_its_byte_order_mark_is_read(
    api: APIClient, lead_rows: list[dict[str, Any]], encoding: str
) -> None:
    rows = balanced_leads(lead_rows)
    data = csv_text(rows, delimiter="\t").encode(encoding)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    response = api.post("/datasets", lead_form(upload(data)), format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["columns"] == list(rows[0]) and response.json()["rows"] == 60


def test_csv_header_with_a_giant_field_is_400(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    # Over the csv module's field limit (128 KiB): its error was a 500.
    text = csv_text(balanced_leads(lead_rows))
    body = assert_rejected(api.post("/datasets", lead_form(upload("x" * 200_000 + "," + text)), format="multipart"))
    assert "malformed CSV" in body["error"] and body["details"] == {"file": ["malformed CSV"]}


def test_get_dataset_returns_the_summary(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    created = api.post("/datasets", lead_json(balanced_leads(lead_rows)), format="json").json()
    response = api.get(f"/datasets/{created['dataset_id']}")
    assert response.status_code == 200
    assert response.json() == created


def test_lead_rows_are_stored_with_01_labels_and_target_column(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    rows = balanced_leads(lead_rows)
    body = api.post("/datasets", lead_json(rows), format="json").json()
    stored = list(DatasetRow.objects.filter(dataset_id=body["dataset_id"]).order_by("row_number"))
    assert len(stored) == len(rows)
    for row, original in zip(stored, rows):
        assert row.tenant == TENANT and row.model_type == "lead_conversion"
        assert row.data == original  # target column included
        assert row.label == (1.0 if original["status"] in POSITIVE else 0.0)


def test_clv_rows_are_stored_with_numeric_labels(api: APIClient, customer_rows: list[dict[str, Any]]) -> None:
    rows = customer_rows[:60]
    payload = {
        "user_id": TENANT, "model_type": "customer_lifetime_value", "name": "customers",
        "target": "lifetime_value", "rows": rows,
    }
    response = api.post("/datasets", payload, format="json")
    assert response.status_code == 201, response.content
    target = response.json()["quality_report"]["target"]
    assert target["max"] == pytest.approx(max(row["lifetime_value"] for row in rows), abs=1e-3)
    stored = list(DatasetRow.objects.filter(dataset_id=response.json()["dataset_id"]).order_by("row_number"))
    assert [row.label for row in stored] == pytest.approx([row["lifetime_value"] for row in rows])
    assert all("lifetime_value" in row.data for row in stored)


# --- rejected uploads: 400 and nothing stored -----------------------------------------


def test_missing_target_column_is_400_naming_it(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    response = api.post("/datasets", lead_json(balanced_leads(lead_rows), target="converted"), format="json")
    body = assert_rejected(response)
    assert "converted" in body["error"]
    assert "target" in body["details"]


def test_single_class_target_is_400(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    rows = balanced_leads(lead_rows, positives=0, negatives=60)
    body = assert_rejected(api.post("/datasets", lead_json(rows), format="json"))
    assert "single class" in body["error"]


def test_fewer_rows_than_minimum_is_400(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    rows = balanced_leads(lead_rows, positives=20, negatives=29)
    assert len(rows) == 49
    body = assert_rejected(api.post("/datasets", lead_json(rows), format="json"))
    assert "50" in body["error"] and "49" in body["error"]


def test_too_few_rows_of_a_class_is_400(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    rows = balanced_leads(lead_rows, positives=9, negatives=51)
    body = assert_rejected(api.post("/datasets", lead_json(rows), format="json"))
    assert "9" in body["error"]


def test_empty_file_is_400(api: APIClient) -> None:
    assert_rejected(api.post("/datasets", lead_form(upload(b"")), format="multipart"))


def test_whitespace_only_file_is_400(api: APIClient) -> None:
    body = assert_rejected(api.post("/datasets", lead_form(upload(b"\n \n")), format="multipart"))
    assert "empty" in body["error"]


def test_header_only_csv_is_400(api: APIClient) -> None:
    body = assert_rejected(api.post("/datasets", lead_form(upload("email,job_title,status\n")), format="multipart"))
    assert "no data rows" in body["error"]


def test_binary_file_is_400(api: APIClient) -> None:
    body = assert_rejected(api.post("/datasets", lead_form(upload(PNG_BYTES, name="logo.png")), format="multipart"))
    assert "not a CSV" in body["error"]


def test_csv_with_ragged_rows_is_400(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    text = csv_text(balanced_leads(lead_rows))
    lines = text.splitlines()
    lines[5] += ",surplus,fields"
    body = assert_rejected(api.post("/datasets", lead_form(upload("\n".join(lines) + "\n")), format="multipart"))
    assert "malformed CSV" in body["error"]


def test_csv_with_unbalanced_quote_is_400(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    text = csv_text(balanced_leads(lead_rows))
    lines = text.splitlines()
    lines[3] = '"' + lines[3]  # opens a quoted field that never closes
    body = assert_rejected(api.post("/datasets", lead_form(upload("\n".join(lines) + "\n")), format="multipart"))
    assert "malformed CSV" in body["error"]


def test_both_file_and_rows_is_400(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    rows = balanced_leads(lead_rows)
    form = lead_form(upload(csv_text(rows)), rows=json.dumps(rows))
    body = assert_rejected(api.post("/datasets", form, format="multipart"))
    assert "file" in body["details"]


def test_neither_file_nor_rows_is_400(api: APIClient) -> None:
    payload = lead_json([])
    del payload["rows"]
    body = assert_rejected(api.post("/datasets", payload, format="json"))
    assert "file" in body["details"]


def test_unknown_model_type_is_400(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    body = assert_rejected(api.post("/datasets", lead_json(balanced_leads(lead_rows), model_type="churn"), format="json"))
    assert "model_type" in body["details"]


def test_unmappable_lead_target_without_positive_values_is_400(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    rows = [row | {"status": "open" if index % 2 else "closed"} for index, row in enumerate(balanced_leads(lead_rows))]
    payload = lead_json(rows)
    del payload["positive_values"]
    body = assert_rejected(api.post("/datasets", payload, format="json"))
    assert "positive_values" in body["error"]
    assert "positive_values" in body["details"]


def test_non_numeric_clv_target_is_400(api: APIClient, customer_rows: list[dict[str, Any]]) -> None:
    rows = [dict(row) for row in customer_rows[:60]]
    rows[7]["lifetime_value"] = "a lot"
    payload = {
        "user_id": TENANT, "model_type": "customer_lifetime_value", "name": "customers",
        "target": "lifetime_value", "rows": rows,
    }
    body = assert_rejected(api.post("/datasets", payload, format="json"))
    assert "number" in body["error"] and "a lot" in body["error"]


def test_crm_rows_with_tags_and_custom_fields_are_stored_flattened(
    api: APIClient, lead_rows: list[dict[str, Any]]
) -> None:
    rows = [dict(row) for row in balanced_leads(lead_rows)]  # lead_rows is shared by the session
    for index, row in enumerate(rows):
        row["tags"] = ["vip", "webinar"] if index % 3 == 0 else ([] if index % 3 == 1 else ["webinar"])
        row["custom_fields"] = {"industry": "saas" if index % 2 else "retail"} if index % 5 else {}
    response = api.post("/datasets", lead_json(rows), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    # One level of objects flattened into columns; lists read as tags.
    assert "custom_fields.industry" in body["columns"] and "tags" in body["columns"]
    kinds = body["quality_report"]["column_kinds"]
    assert kinds["tags"] == "tags" and kinds["custom_fields.industry"] == "categorical"
    stored = DatasetRow.objects.get(dataset_id=body["dataset_id"], row_number=1).data
    assert stored["custom_fields.industry"] == "saas" and stored["tags"] == []


def test_values_nested_too_deep_or_with_nul_inside_are_400(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    rows = balanced_leads(lead_rows)
    rows[2] = rows[2] | {"custom_fields": {"a": {"b": {"c": {"d": {"e": 1}}}}}}
    body = assert_rejected(api.post("/datasets", lead_json(rows), format="json"))
    assert "rows[2].custom_fields" in body["error"] and "nested" in body["error"]
    rows = balanced_leads(lead_rows)
    rows[4] = rows[4] | {"tags": ["ok", "bad\u0000tag"]}
    body = assert_rejected(api.post("/datasets", lead_json(rows), format="json"))
    assert "rows[4].tags[1]" in body["error"] and "NUL" in body["error"]


def test_nul_character_in_rows_is_not_a_server_error(api: APIClient, lead_rows: list[dict[str, Any]]) -> None:
    rows = balanced_leads(lead_rows)
    rows[0] = rows[0] | {"company": "Acme\u0000Corp"}
    response = api.post("/datasets", lead_json(rows), format="json")
    body = assert_rejected(response)
    assert "NUL" in body["error"]


# --- limits: 413 --------------------------------------------------------------------


def test_csv_over_upload_byte_limit_is_413(api: APIClient, lead_rows: list[dict[str, Any]], settings: Any) -> None:
    settings.LEADML_MAX_UPLOAD_BYTES = 2000
    text = csv_text(balanced_leads(lead_rows))
    assert len(text) > 2000
    body = assert_rejected(api.post("/datasets", lead_form(upload(text)), format="multipart"), status=413)
    assert "2000" in body["error"]


def test_rows_over_upload_row_limit_is_413(api: APIClient, lead_rows: list[dict[str, Any]], settings: Any) -> None:
    settings.LEADML_MAX_UPLOAD_ROWS = 59
    body = assert_rejected(api.post("/datasets", lead_json(balanced_leads(lead_rows)), format="json"), status=413)
    assert "59" in body["error"]


def test_csv_rows_over_upload_row_limit_is_413(api: APIClient, lead_rows: list[dict[str, Any]], settings: Any) -> None:
    settings.LEADML_MAX_UPLOAD_ROWS = 59
    response = api.post("/datasets", lead_form(upload(csv_text(balanced_leads(lead_rows)))), format="multipart")
    assert_rejected(response, status=413)

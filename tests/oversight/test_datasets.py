"""Datasets in the admin: the quality report, a preview of the first rows, appending a CSV."""
from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.oversight.conftest import LEAD, messages_of
from tests.conftest import TENANT
from tests.factories import dataset_with_rows
from training.models import Dataset, DatasetRow

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(db: None, lead_rows: list[dict[str, Any]]) -> Dataset:
    return dataset_with_rows(TENANT, LEAD, lead_rows)


def _csv(rows: list[dict[str, Any]], name: str = "more-leads.csv") -> SimpleUploadedFile:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return SimpleUploadedFile(name, buffer.getvalue().encode(), content_type="text/csv")


def _new_leads(lead_rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return [{**row, "id": f"appended-{index}"} for index, row in enumerate(lead_rows[:count])]


def _change_url(dataset: Dataset) -> str:
    return f"/admin/training/dataset/{dataset.pk}/change/"


def _append_url(dataset: Dataset) -> str:
    return f"/admin/training/dataset/{dataset.pk}/append/"


def _section(html: str, element_id: str) -> str:
    return html.split(f'id="{element_id}"', 1)[1].split("</table>", 1)[0]


def test_dataset_page_shows_the_quality_tables_and_the_first_rows(console: Client, dataset: Dataset) -> None:
    response = console.get(_change_url(dataset))

    assert response.status_code == 200
    html = response.content.decode()
    quality = _section(html, "quality-summary")
    assert f"<th>rows</th><td>{dataset.quality_report['rows']}</td>" in quality
    assert f"<th>labelled rows</th><td>{dataset.quality_report['labelled_rows']}</td>" in quality
    assert 'id="missing-share"' in html and 'id="leakage"' in html
    preview = _section(html, "preview")
    first_rows = list(DatasetRow.objects.filter(dataset=dataset).order_by("row_number")[:21])
    for row in first_rows[:20]:
        assert f"<td>{row.data['id']}</td>" in preview
    assert f"<td>{first_rows[20].data['id']}</td>" not in preview  # 20 rows, not the whole dataset
    for column in dataset.columns:
        assert f"<th>{column}</th>" in preview
    assert f'href="{_append_url(dataset)}"' in html


def test_append_view_shows_an_upload_form(console: Client, dataset: Dataset) -> None:
    response = console.get(_append_url(dataset))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'enctype="multipart/form-data"' in html and 'type="file" name="file"' in html
    assert f"<code>{dataset.target}</code>" in html


def test_appending_a_csv_adds_numbered_rows_and_recomputes_the_quality_report(
    console: Client, dataset: Dataset, lead_rows: list[dict[str, Any]]
) -> None:
    before = dataset.row_count
    extra = _new_leads(lead_rows, 3)
    extra[0]["company_size"] = ""  # one more missing value shows in the recomputed report

    response = console.post(_append_url(dataset), {"file": _csv(extra)})

    assert response.status_code == 302 and response["Location"] == _change_url(dataset)
    assert messages_of(response) == [("success", "Appended 3 rows.")]
    dataset.refresh_from_db()
    assert dataset.row_count == before + 3 and dataset.labelled_row_count == before + 3
    appended = list(DatasetRow.objects.filter(dataset=dataset, row_number__gte=before).order_by("row_number"))
    assert [row.row_number for row in appended] == [before, before + 1, before + 2]
    assert [row.data["id"] for row in appended] == ["appended-0", "appended-1", "appended-2"]
    assert [row.label for row in appended] == [1.0 if row["status"] in ("customer", "won") else 0.0 for row in extra]
    assert dataset.quality_report["rows"] == before + 3
    assert dataset.quality_report["missing_share"]["company_size"] > 0
    page = console.get(_change_url(dataset)).content.decode()
    assert f"<th>rows</th><td>{before + 3}</td>" in page


def test_appending_a_csv_without_the_target_column_appends_nothing(
    console: Client, dataset: Dataset, lead_rows: list[dict[str, Any]]
) -> None:
    before = (dataset.row_count, DatasetRow.objects.count(), dataset.quality_report)
    without_target = [{key: value for key, value in row.items() if key != "status"} for row in _new_leads(lead_rows, 3)]

    response = console.post(_append_url(dataset), {"file": _csv(without_target)})

    assert response.status_code == 302
    [(level, text)] = messages_of(response)
    assert level == "error" and "target column 'status' is not in the data" in text
    dataset.refresh_from_db()
    assert (dataset.row_count, DatasetRow.objects.count(), dataset.quality_report) == before


def test_appending_without_a_file_shows_the_form_again(console: Client, dataset: Dataset) -> None:
    # What a browser sends when no file was chosen: an empty field, no upload.
    response = console.post(_append_url(dataset), {"file": ""})

    assert response.status_code == 200
    assert response.context["form"].errors == {"file": ["This field is required."]}
    assert DatasetRow.objects.count() == dataset.row_count


def test_staff_without_change_permission_cannot_append(viewer: Client, dataset: Dataset, lead_rows: list[dict[str, Any]]) -> None:
    assert viewer.get(_change_url(dataset)).status_code == 200  # may look

    response = viewer.post(_append_url(dataset), {"file": _csv(_new_leads(lead_rows, 2))})

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert DatasetRow.objects.count() == dataset.row_count

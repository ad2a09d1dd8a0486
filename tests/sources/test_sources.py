"""Training from the CRM's database and outcomes from its status changes (README, "Training from the CRM's database")."""
from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from monitoring.models import Outcome, SourceSyncState
from monitoring.services.source_sync import source_sync_all
from tests.factories import dataset_with_rows, tenant_client
from tests.sources.conftest import OPEN_LEADS, LABELLED_LEADS, SYNC_TENANT, TRAIN_TENANT, CrmDatabase
from training.models import Dataset, DatasetRow, DataSource, TrainingJob
from training.source_defaults import defaults_for

LEAD = "lead_conversion"
PASSWORD = "s3cret-Pa55word"
UPLOAD_TWIN = "upload-twin"


def crm_url(crm: CrmDatabase, *, password: str = PASSWORD) -> str:
    # Trust authentication ignores the password: it is there to be hidden.
    return crm.url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@")


def make_source(url: str, name: str = "crm") -> DataSource:
    source = DataSource(name=name, url=url, model_type=LEAD, kind="records", **defaults_for(model_type=LEAD, kind="records"))
    source.full_clean()
    source.save()
    return source


def train(client: APIClient, tenant: str, name: str, capture: Any, **config: Any) -> tuple[Any, dict[str, Any]]:
    body: dict[str, Any] = {"model_type": LEAD, "algorithm": "logistic_regression", "model_name": name, "user_id": tenant}
    if config:
        body["training_config"] = config
    with capture(execute=True):
        response = client.post("/train", body, format="json")
    if response.status_code != 202:
        return response, {}
    return response, client.get(f"/jobs/{response.json()['job_id']}").json()


@pytest.mark.single_database  # the CRM database is PostgreSQL in both passes
def test_train_with_only_the_crm_fields_reads_the_crm_and_matches_the_upload(
    db: None, crm_db: CrmDatabase, django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    make_source(crm_url(crm_db))
    response, job = train(tenant_client(TRAIN_TENANT), TRAIN_TENANT, "crm_lr", django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.json()
    assert job["status"] == "succeeded", job["error"]
    assert any(entry["step"] == "read_source" and "message" in entry for entry in job["log"])

    dataset = Dataset.objects.get(tenant=TRAIN_TENANT)
    assert dataset.kind == "source" and dataset.data_source.name == "crm"
    assert dataset.row_count == LABELLED_LEADS + OPEN_LEADS
    # Open statuses are stored unlabelled: kept, never trained on.
    assert dataset.labelled_row_count == LABELLED_LEADS
    assert DatasetRow.objects.filter(dataset=dataset, label__isnull=True).count() == OPEN_LEADS
    config = dataset.source_config
    assert len(config["query_sha256"]) == 64 and config["read_at"] and config["source_rows"] == dataset.row_count
    rows = list(dataset.rows.values_list("data", flat=True))
    # The onboarding mails after a sale are not read; the excluded columns are not either.
    assert all(row["email_sent_count"] == 0 for row in rows)
    assert not {"updated_at", "notes", "last_contact_date", "first_name", "phone"} & set(rows[0])
    assert "custom_fields.engagement_score" in rows[0]

    # The same leads uploaded by another tenant (same ids, so the same held-out rows).
    dataset_with_rows(UPLOAD_TWIN, LEAD, crm_db.uploads[TRAIN_TENANT], name="upload", positive_values=["customer"])
    response, twin = train(tenant_client(UPLOAD_TWIN), UPLOAD_TWIN, "upload_lr", django_capture_on_commit_callbacks)
    assert twin["status"] == "succeeded", twin["error"]
    source_auc = job["result"]["metrics"]["roc_auc"]
    upload_auc = twin["result"]["metrics"]["roc_auc"]
    print(f"\nROC-AUC from the CRM database {source_auc:.4f}, from the upload {upload_auc:.4f}")
    assert abs(source_auc - upload_auc) <= 0.03, (source_auc, upload_auc)
    assert source_auc > 0.75
    assert PASSWORD not in caplog.text


def test_no_source_and_no_rows_keeps_the_400(db: None, django_capture_on_commit_callbacks: Any) -> None:
    response, _ = train(tenant_client(TRAIN_TENANT), TRAIN_TENANT, "nothing", django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert "user_id" in response.json()["details"]
    assert "POST /datasets" in response.json()["error"]


def test_a_status_change_becomes_one_outcome(
    db: None, crm_db: CrmDatabase, django_capture_on_commit_callbacks: Any
) -> None:
    source = make_source(crm_url(crm_db))
    client = tenant_client(SYNC_TENANT)
    response, job = train(client, SYNC_TENANT, "sync_lr", django_capture_on_commit_callbacks)
    assert job["status"] == "succeeded", job["error"]
    lead_id = crm_db.open_ids[SYNC_TENANT]["qualified"][0]
    lead = dict(zip(("id", "email", "company", "job_title", "lead_score", "status"), crm_db.execute(
        "SELECT id::text, email, company, job_title, lead_score, status FROM leads WHERE id = %s", [lead_id])[0]))
    scored = client.post("/predict", {"model_type": LEAD, "user_id": SYNC_TENANT, "data": lead}, format="json")
    assert scored.status_code == 200 and scored.json()["source"] == "model", scored.json()

    first = source_sync_all(tenant=SYNC_TENANT)
    assert [(result.status, result.outcomes_recorded) for result in first] == [("ok", 0)]
    crm_db.execute("UPDATE leads SET status = 'customer', updated_at = now() WHERE id = %s", [lead_id])

    out = io.StringIO()
    call_command("source_sync", "--tenant", SYNC_TENANT, stdout=out)
    assert "recorded 1 outcomes (1 new" in out.getvalue(), out.getvalue()
    outcome = Outcome.objects.get(tenant=SYNC_TENANT, entity_id=lead_id)
    assert outcome.label == 1.0 and outcome.value == "customer"
    assert outcome.prediction_id is not None and outcome.dataset_row.dataset.kind == "source"

    again = source_sync_all(tenant=SYNC_TENANT)
    assert again[0].status == "ok" and again[0].outcomes_recorded == 0 and again[0].duplicates == 1
    assert Outcome.objects.filter(tenant=SYNC_TENANT).count() == 1
    state = SourceSyncState.objects.get(source=source, tenant=SYNC_TENANT)
    assert state.status == "ok" and state.high_water is not None and state.outcomes_recorded_total == 1
    source.refresh_from_db()
    assert source.last_sync_status == "ok" and source.outcomes_recorded_total == 1

    dry = io.StringIO()
    call_command("source_sync", "--tenant", SYNC_TENANT, "--dry-run", stdout=dry)
    assert "would record 1 outcomes" in dry.getvalue(), dry.getvalue()


def test_a_refused_connection_fails_clearly_and_stores_nothing(
    db: None, client: Any, django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture,
    django_user_model: Any,
) -> None:
    caplog.set_level(logging.INFO)
    make_source(f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/crm")
    response, job = train(tenant_client(TRAIN_TENANT), TRAIN_TENANT, "down", django_capture_on_commit_callbacks)
    assert response.status_code == 202
    assert job["status"] == "failed"
    assert "data source 'crm'" in job["error"] and "cannot be reached" in job["error"], job["error"]
    assert "postgres:***@127.0.0.1:1/crm" in job["error"]
    assert not Dataset.objects.filter(tenant=TRAIN_TENANT).exists()
    assert not DatasetRow.objects.filter(tenant=TRAIN_TENANT).exists()
    assert TrainingJob.objects.get(pk=job["job_id"]).dataset_id is None

    # The outcome sync fails with the reason; /health says degraded, and still answers 200.
    tenant_client(TRAIN_TENANT).post("/predict", {"model_type": LEAD, "user_id": TRAIN_TENANT,
                                                  "data": {"id": "x1", "email": "a@b.com"}}, format="json")
    results = source_sync_all()
    assert [result.status for result in results] == ["failed"] and "cannot be reached" in results[0].error
    health = APIClient().get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "degraded" and body["checks"]["data_sources"] == {
        "status": "degraded", "configured": 1, "failed": ["crm"]}
    assert body["services"]["data_sources"] == "unavailable" and body["services"]["database"] == "available"

    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "a-long-admin-password")
    client.force_login(admin)
    page = client.get("/admin/training/datasource/").content.decode()
    assert "failed" in page and "cannot be reached" in page
    assert PASSWORD not in page and PASSWORD not in caplog.text and PASSWORD not in str(body)
    states = client.get("/admin/monitoring/sourcesyncstate/").content.decode()
    assert "cannot be reached" in states and PASSWORD not in states


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"source": f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/crm"}, "training_config.source"),
        ({"source": {"url": f"postgresql://postgres:{PASSWORD}@h/db", "query": "SELECT 1"}}, "training_config.source"),
        ({"source": "DROP TABLE leads"}, "training_config.source"),
        ({"url": f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/crm"}, "training_config.url"),
        ({"query": "SELECT * FROM leads"}, "training_config.query"),
        ({"sql": "SELECT * FROM leads"}, "training_config.sql"),
    ],
)
def test_a_tenant_cannot_pass_a_url_or_sql(
    db: None, crm_db: CrmDatabase, config: dict[str, Any], field: str, django_capture_on_commit_callbacks: Any
) -> None:
    make_source(crm_url(crm_db))
    response, _ = train(tenant_client(TRAIN_TENANT), TRAIN_TENANT, "hostile", django_capture_on_commit_callbacks,
                        **config)
    assert response.status_code == 400, response.json()
    assert field in response.json()["details"], response.json()
    assert PASSWORD not in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_a_tenant_cannot_upload_a_source_dataset(db: None) -> None:
    response = tenant_client(TRAIN_TENANT).post("/datasets", {
        "user_id": TRAIN_TENANT, "model_type": LEAD, "name": "x", "kind": "source", "target": "status",
        "rows": [{"status": "customer"}]}, format="json")
    assert response.status_code == 400 and "kind" in response.json()["details"]


def test_credentials_are_not_shown_by_the_admin_or_the_api(
    db: None, client: Any, crm_db: CrmDatabase, django_user_model: Any, django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    source = make_source(crm_url(crm_db))
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "a-long-admin-password")
    client.force_login(admin)
    listing = client.get("/admin/training/datasource/").content.decode()
    assert "postgresql://postgres:***@127.0.0.1:5432/" in listing and PASSWORD not in listing
    change = client.get(f"/admin/training/datasource/{source.pk}/change/").content.decode()
    assert PASSWORD not in change and "***" in change
    assert PASSWORD not in str(source) and PASSWORD not in repr(source)

    # Saving the form with the masked URL keeps the stored password.
    form = {
        "name": "crm", "url": source.masked_url, "enabled": "on", "model_type": LEAD, "kind": "records",
        "query": source.query, "changes_query": source.changes_query, "target_column": "status",
        "positive_values": '["customer"]', "negative_values": '["lost"]', "horizon_days": "365",
        "statement_timeout_seconds": "60",
    }
    saved = client.post(f"/admin/training/datasource/{source.pk}/change/", form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    source.refresh_from_db()
    assert source.url == crm_url(crm_db) and source.statement_timeout_seconds == 60
    history = client.get(f"/admin/training/datasource/{source.pk}/history/").content.decode()
    assert PASSWORD not in history

    api = tenant_client(TRAIN_TENANT)
    response, job = train(api, TRAIN_TENANT, "shown", django_capture_on_commit_callbacks, source="crm")
    assert job["status"] == "succeeded", job["error"]
    dataset = Dataset.objects.get(tenant=TRAIN_TENANT)
    answers = [response.content.decode(), str(job), api.get(f"/datasets/{dataset.pk}").content.decode(),
               api.get(f"/models/{TRAIN_TENANT}").content.decode(), client.get("/admin/training/dataset/").content.decode()]
    for answer in answers:
        assert PASSWORD not in answer
    assert PASSWORD not in caplog.text


def test_source_check_prints_columns_and_counts(db: None, crm_db: CrmDatabase) -> None:
    make_source(crm_url(crm_db))
    out = io.StringIO()
    call_command("source_check", "crm", "--tenant", TRAIN_TENANT, stdout=out)
    text = out.getvalue()
    assert "5 rows (LIMIT 5)" in text and "website_visit_count: 5 of 5 filled" in text
    assert "postgres:***@" in text and PASSWORD not in text


@pytest.mark.single_database  # the CRM database is PostgreSQL in both passes
def test_lifetime_value_trains_from_a_purchase_log(
    db: None, crm_db: CrmDatabase, django_capture_on_commit_callbacks: Any
) -> None:
    import numpy as np

    from training.source_defaults import TRANSACTIONS_QUERY

    tenant = "3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a03"
    crm_db.execute(
        "CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, user_id uuid, customer_id text, amount numeric, "
        "created_at timestamptz)"
    )
    rng = np.random.default_rng(3)
    purchases = []
    for customer in range(150):
        rate = rng.gamma(2, 2)
        for _ in range(1 + rng.poisson(rate * 3)):
            purchases.append((tenant, f"c{customer}", round(float(rng.lognormal(4, 0.5)), 2), int(rng.integers(1, 1000))))
    crm_db.execute(
        "INSERT INTO orders (user_id, customer_id, amount, created_at) SELECT u::uuid, c, a, now() - make_interval(days => d) "
        "FROM unnest(%s::text[], %s::text[], %s::numeric[], %s::int[]) AS t(u, c, a, d)",
        [[p[0] for p in purchases], [p[1] for p in purchases], [p[2] for p in purchases], [p[3] for p in purchases]],
    )
    source = DataSource(name="orders", url=crm_db.url, model_type="customer_lifetime_value", kind="transactions",
                        query=TRANSACTIONS_QUERY, target_column="")
    source.full_clean()
    source.save()
    client = tenant_client(tenant)
    body = {"model_type": "customer_lifetime_value", "algorithm": "linear_regression", "model_name": "clv",
            "user_id": tenant, "training_config": {"cv_folds": 3}}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/train", body, format="json")
    assert response.status_code == 202, response.json()
    job = client.get(f"/jobs/{response.json()['job_id']}").json()
    assert job["status"] == "succeeded", job["error"]
    dataset = Dataset.objects.get(tenant=tenant)
    assert dataset.kind == "source" and dataset.built_from_transactions
    assert dataset.source_config["source_rows"] == len(purchases) and dataset.source_config["horizon_days"] == 365
    assert client.get(f"/datasets/{dataset.pk}").status_code == 200

"""Data sources from settings, and URLs shown without their password (no CRM database needed)."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from training.models import DataSource
from training.services.sources import data_sources_load_settings
from training.source_defaults import LEADS_QUERY
from training.source_urls import secrets_redact, url_masked, url_problem


def test_urls_are_masked_and_scrubbed() -> None:
    url = "postgres://crm_reader:p%40ss@db.internal:5433/crm?sslmode=require"
    assert url_masked(url) == "postgres://crm_reader:***@db.internal:5433/crm"
    assert url_masked("postgresql://reader@db/crm") == "postgresql://reader@db/crm"
    assert secrets_redact(f"failed for {url}: p%40ss p@ss", url) == (
        "failed for postgres://crm_reader:***@db.internal:5433/crm: *** ***")
    assert url_problem("mysql://x@h/db") and url_problem("postgres://h") and url_problem(url) is None


def test_sources_load_from_settings_with_the_defaults(db: None, settings: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_DB_URL", "postgres://reader:pw@crm-db:5432/crm")
    settings.LEADML_DATA_SOURCES = [{"name": "crm", "url_env": "CRM_DB_URL", "model_type": "lead_conversion"}]
    data_sources_load_settings()
    data_sources_load_settings()  # idempotent
    source = DataSource.objects.get()
    assert source.from_settings and source.query == LEADS_QUERY and source.positive_values == ["customer"]
    assert source.negative_values == ["lost"] and source.changes_query and source.masked_url.endswith("@crm-db:5432/crm")

    settings.LEADML_DATA_SOURCES = [{"name": "bad", "url": "postgres://reader:pw@h/db", "query": "SELECT 1"}]
    with pytest.raises(ValueError) as raised:
        data_sources_load_settings()
    assert "user_id" in str(raised.value) and "pw@" not in str(raised.value)


def test_a_source_query_must_read_one_tenant(db: None) -> None:
    source = DataSource(name="x", url="postgres://r@h/db", query="SELECT * FROM leads;", positive_values=["customer"])
    with pytest.raises(ValidationError) as raised:
        source.full_clean()
    assert "query" in raised.value.message_dict

"""A CRM database of its own on the local PostgreSQL: `leads` and `lead_activities` filled from the demo leads.

The database (`leadml_crm_test_<random>`) is created once per session through psycopg
on the server's `postgres` database and dropped at the end; the Django test database
(SQLite or PostgreSQL) is another one. Without a reachable server every test that
needs it skips, saying why.
"""
from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from demo.data import generate_leads

SERVER = os.environ.get("LEADML_CRM_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432")
# The leadml tenant is the CRM's user id (a uuid).
TRAIN_TENANT = "5b0f7a52-3c1e-4c55-9a53-8d1f0c6b2a01"
SYNC_TENANT = "9e6d2c41-7b8a-4f0e-8c3d-2a5b6f7e8d02"
LABELLED_LEADS = 500
OPEN_LEADS = 50
OPEN_STATUSES = ("new", "contacted", "qualified", "opportunity")
NAMESPACE = uuid.UUID("0b9c1c5e-2f3a-4d6b-8e7f-9a0b1c2d3e4f")

SCHEMA = """
CREATE TABLE leads (
    id uuid PRIMARY KEY, user_id uuid NOT NULL, email text, phone text, first_name text, last_name text,
    company text, job_title text, lead_score int CHECK (lead_score BETWEEN 0 AND 100),
    status text NOT NULL CHECK (status IN ('new','contacted','qualified','opportunity','customer','lost')),
    tags text[] DEFAULT '{}', custom_fields jsonb DEFAULT '{}', last_contact_date timestamptz,
    next_follow_up timestamptz, notes text, created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX leads_user ON leads (user_id, updated_at);
CREATE TABLE lead_activities (
    id uuid PRIMARY KEY, lead_id uuid NOT NULL REFERENCES leads(id),
    type text NOT NULL CHECK (type IN ('email_sent','email_opened','email_clicked','call_made','meeting_scheduled',
                                       'form_submitted','website_visit','social_interaction')),
    details jsonb DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lead_activities_lead ON lead_activities (lead_id, created_at);
"""


@dataclass
class CrmDatabase:
    url: str
    name: str
    # Per tenant: the demo rows as an upload would carry them (labelled leads only, same ids).
    uploads: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Per tenant: the ids of its open leads, by status.
    open_ids: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else []


def _server_connect(database: str = "postgres") -> Any:
    import psycopg

    return psycopg.connect(f"{SERVER}/{database}", autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def crm_db() -> Iterator[CrmDatabase]:
    try:
        admin = _server_connect()
    except Exception as error:  # any reason the server cannot be used: skip, and say it
        reason = f"PostgreSQL for the CRM test database not reachable at {SERVER}: {error}"
        print(f"\n{reason}", file=sys.stderr)
        pytest.skip(reason)
    name = f"leadml_crm_test_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    crm = CrmDatabase(url=f"{SERVER}/{name}", name=name)
    try:
        _fill(crm)
        yield crm
    finally:
        with _server_connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fill(crm: CrmDatabase) -> None:
    import psycopg

    with psycopg.connect(crm.url, autocommit=True) as connection:
        connection.execute(SCHEMA)
        for tenant, seed in ((TRAIN_TENANT, 21), (SYNC_TENANT, 22)):
            leads, activities, upload, open_ids = _tenant_rows(tenant, seed)
            with connection.cursor() as cursor:
                with cursor.copy(
                    "COPY leads (id, user_id, email, first_name, last_name, company, job_title, lead_score, status, "
                    "tags, custom_fields, last_contact_date, notes, created_at, updated_at) FROM STDIN"
                ) as copy:
                    for row in leads:
                        copy.write_row(row)
                with cursor.copy("COPY lead_activities (id, lead_id, type, created_at) FROM STDIN") as copy:
                    for row in activities:
                        copy.write_row(row)
            crm.uploads[tenant] = upload
            crm.open_ids[tenant] = open_ids


def _tenant_rows(tenant: str, seed: int) -> tuple[list[tuple], list[tuple], list[dict[str, Any]], dict[str, list[str]]]:
    """The demo leads as CRM rows: engagement counts become activities, custom fields hold the rest."""
    rng = np.random.default_rng(seed)
    now = datetime.now(timezone.utc)
    frame = generate_leads(LABELLED_LEADS + OPEN_LEADS, seed=seed)
    records = json.loads(frame.to_json(orient="records"))
    leads, activities, upload = [], [], []
    open_ids: dict[str, list[str]] = {status: [] for status in OPEN_STATUSES}
    for index, record in enumerate(records):
        lead_id = str(uuid.uuid5(NAMESPACE, f"{tenant}/{record['id']}"))
        created = datetime.fromisoformat(record["created_at"]).replace(tzinfo=timezone.utc)
        labelled = index < LABELLED_LEADS
        if labelled:
            status = "customer" if record["status"] in ("customer", "won") else "lost"
            # Closed 20-120 days after creation, always in the past.
            cut = min(created + timedelta(days=int(rng.integers(20, 120))), now - timedelta(days=1))
        else:
            status = OPEN_STATUSES[index % len(OPEN_STATUSES)]
            cut = now - timedelta(days=2)
            open_ids[status].append(lead_id)
        local = record["email"].split("@")[0]
        first, _, last = local.partition(".")
        custom = {"industry": record["industry"], "source": record["source"],
                  "engagement_score": record["engagement_score"]}
        if record["company_size"] is not None:
            custom["company_size"] = record["company_size"]
        leads.append((
            lead_id, tenant, record["email"], first.title(), last.title() or None, record["company"],
            record["job_title"], int(record["lead_score"]), status, [], json.dumps(custom),
            cut.isoformat(), "closed" if labelled else None, created.isoformat(), cut.isoformat(),
        ))
        span = max((cut - created).total_seconds(), 3600.0)
        clicked = record["email_interactions"] // 3
        counts = {"email_opened": record["email_interactions"] - clicked, "email_clicked": clicked,
                  "website_visit": record["website_visits"], "form_submitted": record["content_downloads"]}
        for kind, count in counts.items():
            for _ in range(int(count)):
                at = created + timedelta(seconds=float(rng.uniform(0, span)))
                activities.append((str(uuid.uuid4()), lead_id, kind, at.isoformat()))
        if status == "customer":
            # Onboarding mails after the sale: a leak the default query must not read.
            for day in (1, 3, 7):
                activities.append((str(uuid.uuid4()), lead_id, "email_sent", (cut + timedelta(hours=day)).isoformat()))
        if labelled:
            upload.append({**{key: value for key, value in record.items() if key != "id"}, "id": lead_id,
                           "status": status})
    return leads, activities, upload, open_ids

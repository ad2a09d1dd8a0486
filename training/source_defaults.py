"""The default queries of a data source, written for the CRM's schema (README, "Training from the CRM's database").

`leads` (id, user_id, email, phone, first_name, last_name, company, job_title, lead_score,
status, tags, custom_fields, last_contact_date, next_follow_up, notes, created_at,
updated_at) and `lead_activities` (id, lead_id, type, details, created_at). Each query
reads one tenant's rows: `%(user_id)s` is the leadml tenant, the CRM's user id.

What the lead query leaves out, and why (leakage and privacy):
- `updated_at`: it moves when the status changes, so for a closed lead it is the day it
  closed; it is the sync's clock, never a feature.
- `last_contact_date`, `next_follow_up`: the sales process writes them, and stops (or
  clears them) when a lead closes: they say "closed", not "will convert".
- `notes`: free text written during the sale ("signed", "not interested").
- `first_name`, `last_name`, `phone`, `user_id`: personal data and the tenant, no signal.
- activities after a closed lead's close (onboarding mails to a new customer): every
  activity feature is taken as of the lead's cut-off, `updated_at` for a closed lead and
  now for an open one, so a closed lead looks as it did when it closed, as an open lead
  looks when it is scored.
"""
from __future__ import annotations

ACTIVITY_TYPES = (
    "email_sent",
    "email_opened",
    "email_clicked",
    "call_made",
    "meeting_scheduled",
    "form_submitted",
    "website_visit",
    "social_interaction",
)
TERMINAL_POSITIVE = ("customer",)
TERMINAL_NEGATIVE = ("lost",)


def _activity_columns() -> str:
    counts = [
        f"COUNT(*) FILTER (WHERE a.type = '{kind}') AS {kind}_count" for kind in ACTIVITY_TYPES
    ]
    recency = [
        f"EXTRACT(EPOCH FROM cut.as_of - MAX(a.created_at) FILTER (WHERE a.type = '{kind}')) / 86400.0"
        f" AS days_since_{kind}"
        for kind in ACTIVITY_TYPES
    ]
    return ",\n               ".join(counts + recency)


LEADS_QUERY = f"""SELECT l.id::text AS id, l.email, l.company, l.job_title, l.lead_score, l.tags,
       l.custom_fields, l.created_at, l.status, act.*
FROM leads l
CROSS JOIN LATERAL (
    SELECT CASE WHEN l.status = ANY(%(terminal_values)s) THEN l.updated_at ELSE now() END AS as_of
) cut
CROSS JOIN LATERAL (
        SELECT {_activity_columns()}
        FROM lead_activities a
        WHERE a.lead_id = l.id AND a.created_at <= cut.as_of
) act
WHERE l.user_id::text = %(user_id)s"""

LEAD_CHANGES_QUERY = """SELECT l.id::text AS entity_id, l.status AS outcome, l.updated_at AS changed_at
FROM leads l
WHERE l.user_id::text = %(user_id)s
  AND l.updated_at >= %(since)s
  AND l.status = ANY(%(terminal_values)s)
ORDER BY l.updated_at, l.id"""

# The CRM's schema above has no orders table; this is the shape a purchase log needs
# (one row per purchase: customer_id, date, amount). Edit it to your orders table.
TRANSACTIONS_QUERY = """SELECT o.customer_id::text AS customer_id, o.created_at AS date, o.amount
FROM orders o
WHERE o.user_id::text = %(user_id)s"""


def defaults_for(*, model_type: str, kind: str) -> dict[str, object]:
    """The default query, changes query and target configuration of a new source."""
    if kind == "transactions":
        return {"query": TRANSACTIONS_QUERY, "changes_query": "", "target_column": "", "positive_values": [],
                "negative_values": []}
    if model_type == "lead_conversion":
        return {
            "query": LEADS_QUERY,
            "changes_query": LEAD_CHANGES_QUERY,
            "target_column": "status",
            "positive_values": list(TERMINAL_POSITIVE),
            "negative_values": list(TERMINAL_NEGATIVE),
        }
    return {"query": "", "changes_query": "", "target_column": "lifetime_value", "positive_values": [],
            "negative_values": []}

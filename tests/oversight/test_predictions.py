"""The prediction log in the admin: bounded queries, filters, entity search, outcomes."""
from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from predictions.models import Prediction
from tests.oversight.conftest import (
    FAST_LEAD_GRID,
    LEAD,
    lead_features,
    post_outcomes,
    score_leads,
)
from tests.conftest import TENANT
from tests.factories import trained_model

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/predictions/prediction/"
RULES_SCORED = 5


@pytest.fixture
def prediction_log(api: APIClient, lead_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Five leads scored by the rules (no model yet), then a model and 25 leads scored by it."""
    score_leads(api, lead_rows[:RULES_SCORED])
    trained_model(TENANT, LEAD, lead_rows, config=FAST_LEAD_GRID, reuse=True)
    score_leads(api, lead_rows[RULES_SCORED:30])
    return lead_rows[:30]


def _listed(console: Client, **params: str) -> set[int]:
    response = console.get(CHANGELIST, params)
    assert response.status_code == 200, params
    return {prediction.pk for prediction in response.context["cl"].result_list}


def _ids(**lookups: Any) -> set[int]:
    return set(Prediction.objects.filter(**lookups).values_list("pk", flat=True))


def _changelist_queries(console: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = console.get(CHANGELIST)
    assert response.status_code == 200
    return len(queries)


def test_changelist_queries_do_not_grow_with_the_number_of_predictions(
    console: Client, api: APIClient, lead_model: Any, lead_rows: list[dict[str, Any]]
) -> None:
    score_leads(api, lead_rows[:10])
    post_outcomes(api, [{"entity_id": row["id"], "outcome": row["status"]} for row in lead_rows[:4]])
    console.get(CHANGELIST)  # warm: the first request may load content types and the like
    with_ten = _changelist_queries(console)

    score_leads(api, lead_rows[10:50])
    post_outcomes(api, [{"entity_id": row["id"], "outcome": row["status"]} for row in lead_rows[10:30]])
    with_fifty = _changelist_queries(console)

    assert Prediction.objects.count() == 50
    assert with_fifty == with_ten
    assert with_fifty <= 12


def test_changelist_shows_each_prediction_with_its_model_tier_and_outcome(
    console: Client, api: APIClient, prediction_log: list[dict[str, Any]]
) -> None:
    lead = prediction_log[10]
    post_outcomes(api, [{"entity_id": lead["id"], "outcome": "customer"}])

    html = console.get(CHANGELIST, {"q": lead["id"]}).content.decode()

    prediction = Prediction.objects.get(entity_id=lead["id"])
    assert "leads_lr v1" in html
    assert f'<td class="field-tier">{prediction.output["tier"]}</td>' in html
    assert '<td class="field-outcome_label">1.0</td>' in html


def test_filters_and_entity_search_list_the_right_predictions(
    console: Client, api: APIClient, prediction_log: list[dict[str, Any]], lead_rows: list[dict[str, Any]]
) -> None:
    # One rules-scored lead and two model-scored ones have an outcome.
    with_outcome = [prediction_log[0]["id"], prediction_log[10]["id"], prediction_log[20]["id"]]
    post_outcomes(api, [{"entity_id": entity_id, "outcome": "lost"} for entity_id in with_outcome])
    # Converted leads score high: enough of them reach the top tier. One is scored twice.
    converted = [row for row in lead_rows[30:] if row["status"] in ("customer", "won")][:15]
    score_leads(api, converted + converted[:1])
    everything = _ids()
    by_tier = {pk: output.get("tier") for pk, output in Prediction.objects.values_list("pk", "output")}
    tier_a = {pk for pk, tier in by_tier.items() if tier == "A"}
    assert tier_a, "some converted leads are in tier A"

    assert _listed(console) == everything
    assert _listed(console, has_outcome="yes") == _ids(entity_id__in=with_outcome)
    assert _listed(console, has_outcome="no") == everything - _ids(entity_id__in=with_outcome)
    assert _listed(console, tier="A") == tier_a
    assert _listed(console, tier="D") == {pk for pk, tier in by_tier.items() if tier == "D"}
    rules = _listed(console, source__exact="rules")
    assert len(rules) == RULES_SCORED and rules == _ids(source="rules")
    assert _listed(console, source__exact="model") == _ids(source="model")
    assert _listed(console, source__exact="rules", has_outcome="yes") == _ids(entity_id=prediction_log[0]["id"])
    twice = _listed(console, q=converted[0]["id"])
    assert len(twice) == 2 and twice == _ids(entity_id=converted[0]["id"])
    assert _listed(console, q="no-such-lead") == set()


def test_prediction_page_shows_input_reasons_and_then_the_outcome(
    console: Client, api: APIClient, prediction_log: list[dict[str, Any]]
) -> None:
    lead = prediction_log[7]
    scored = api.post("/predict", {"model_type": LEAD, "user_id": TENANT, "data": lead_features([lead])[0]}, format="json")
    assert scored.status_code == 200 and scored.json()["reasons"]
    prediction = Prediction.objects.filter(entity_id=lead["id"]).latest("created_at")
    url = f"/admin/predictions/prediction/{prediction.pk}/change/"

    before = console.get(url)

    assert before.status_code == 200
    html = before.content.decode()
    assert f"<tr><th>company</th><td>{lead['company']}</td></tr>" in html
    assert "<th>contribution</th>" in html
    for reason in prediction.output["reasons"]:
        assert f"<td>{reason['feature']}</td>" in html
    assert "no outcome recorded yet" in html

    post_outcomes(api, [{"entity_id": lead["id"], "outcome": "won"}])
    after = console.get(url).content.decode()

    assert "no outcome recorded yet" not in after
    assert "<tr><th>outcome</th><td>won</td></tr><tr><th>label</th><td>1.0</td></tr>" in after
    assert f"<tr><th>linked prediction</th><td>{prediction.pk}</td></tr>" in after

"""`GET /insights/{user_id}/{model_type}`: the original fields plus the active model's card."""
from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from registry.models import ModelVersion
from tests.conftest import TENANT


def test_insights_summarise_models_and_predictions(api: APIClient, lead_model: ModelVersion) -> None:
    leads = [{"email": "a@acme.io", "job_title": "CEO", "lead_score": 90}, {"email": "b@gmail.com", "lead_score": 10}]
    assert api.post("/predict/batch", {"model_type": "lead_conversion", "user_id": TENANT, "data": leads},
                    format="json").status_code == 200
    body: dict[str, Any] = api.get(f"/insights/{TENANT}/lead_conversion").json()
    assert {"total_models", "model_types", "avg_performance", "feature_importance_trends",
            "prediction_patterns"} <= set(body)
    # The original's shapes: the algorithms, and per metric {mean, std, min, max}.
    assert body["success"] is True and "error" not in body
    assert body["total_models"] == 1 and body["model_types"] == ["logistic_regression"]
    assert body["model_type_counts"] == {"lead_conversion": 1}
    roc_auc = lead_model.metrics["roc_auc"]
    assert body["avg_performance"]["roc_auc"] == {"mean": roc_auc, "std": 0.0, "min": roc_auc, "max": roc_auc}
    assert body["avg_performance"]["f1_score"]["mean"] == lead_model.metrics["f1"]
    top_feature = lead_model.feature_importance[0][0]
    assert body["feature_importance_trends"][top_feature][0]["version"] == lead_model.version
    patterns = body["prediction_patterns"]
    assert patterns["total_predictions"] == 2 and patterns["by_source"] == {"model": 2}
    assert patterns["rules_share"] == 0.0
    assert sum(day["count"] for day in patterns["per_day"]) == 2
    assert sum(bin_["count"] for bin_ in patterns["score_distribution"]) == 2
    card = body["active_model"]
    assert card["version"] == lead_model.version and card["metrics"] == lead_model.metrics
    thresholds = card["tier_thresholds"]
    assert thresholds["A"] >= thresholds["B"] >= thresholds["C"]


def test_insights_without_models_count_rules_answers(api: APIClient) -> None:
    api.post("/predict", {"model_type": "customer_lifetime_value", "user_id": TENANT,
                          "data": {"total_orders": 3, "total_spent": 300}}, format="json")
    response = api.get(f"/insights/{TENANT}/customer_lifetime_value")
    assert response.status_code == 200
    body = response.json()
    # What the original answered without models, beside leadml's figures.
    assert body["error"] == "No models available for insights" and body["success"] is False
    assert body["total_models"] == 0 and body["active_model"] is None and body["model_types"] == []
    assert body["prediction_patterns"]["rules_share"] == 1.0


def test_insights_check_tenant_and_model_type(api: APIClient, client_for: Any, other_tenant_key: str) -> None:
    assert api.get(f"/insights/{TENANT}/churn").status_code == 400
    assert client_for(other_tenant_key).get(f"/insights/{TENANT}/lead_conversion").status_code == 403
    assert client_for(None).get(f"/insights/{TENANT}/lead_conversion").status_code == 401

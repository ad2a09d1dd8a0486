"""`POST /preprocess`: the original response shape, one record or many, every option's effect."""
from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

CRM_RECORD = {"email": "user@company.com", "job_title": "CEO", "company": "Tech Corp", "lead_score": 85}
RECORDS = [
    {"email": "ann@gmail.com", "job_title": "Intern", "industry": "retail", "visits": 1, "size": 10, "created_at": "2026-01-05"},
    {"email": "bob@acme.io", "job_title": "VP Sales", "industry": "software", "visits": 5, "size": None, "created_at": "2026-03-02"},
    {"email": "cy@initech.com", "job_title": "CTO", "industry": "Select", "visits": 9, "size": 1000, "created_at": "2026-06-10"},
    {"email": "di@yahoo.com", "job_title": "Analyst", "industry": "software", "visits": 3, "size": 30, "created_at": "2026-02-14"},
]


def post(api: APIClient, data: Any, config: dict[str, Any] | None = None) -> Any:
    body = {"data": data, **({"config": config} if config is not None else {})}
    return api.post("/preprocess", body, format="json")


def test_a_single_record_in_the_original_shape(api: APIClient) -> None:
    response = post(api, CRM_RECORD, {"missing_value_strategy": "mean", "categorical_encoding": "one_hot"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) >= {"success", "processed_data", "quality_report", "original_shape", "processed_shape"}
    assert body["success"] is True
    assert body["original_shape"] == [1, 4]
    row = body["processed_data"][0]
    assert body["processed_shape"] == [1, len(row)]
    # E-mail becomes a business-domain flag and domain; the CEO title a seniority level.
    assert row["email__free_mail"] == 0.0
    assert row["email__domain_company.com"] == 1.0
    assert "job_title__seniority" in row


def test_a_list_of_records_and_scaling_options(api: APIClient) -> None:
    standard = post(api, RECORDS, {"scaling": "standard"}).json()
    assert standard["original_shape"] == [4, 6]
    visits = [row["visits"] for row in standard["processed_data"]]
    assert sum(visits) == pytest.approx(0.0, abs=1e-6)  # standardised: mean 0
    minmax = post(api, RECORDS, {"scaling": "minmax"}).json()
    assert [row["visits"] for row in minmax["processed_data"]] == pytest.approx([0.0, 0.5, 1.0, 0.25])
    raw = post(api, RECORDS, {"scaling": "none"}).json()
    assert [row["visits"] for row in raw["processed_data"]] == [1.0, 5.0, 9.0, 3.0]


@pytest.mark.parametrize(
    ("strategy", "extra", "expected"),
    [("mean", {}, (10 + 1000 + 30) / 3), ("median", {}, 30.0), ("constant", {"fill_value": -1}, -1.0)],
)
def test_missing_value_strategies_fill_what_they_say(
    api: APIClient, strategy: str, extra: dict[str, Any], expected: float
) -> None:
    config = {"missing_value_strategy": strategy, "scaling": "none", **extra,
              "feature_engineering": {"log_transform": False}}
    body = post(api, RECORDS, config).json()
    assert body["processed_data"][1]["size"] == pytest.approx(expected)


def test_label_encoding_gives_one_column_per_category_field(api: APIClient) -> None:
    body = post(api, RECORDS, {"categorical_encoding": "label", "scaling": "none"}).json()
    codes = [row["industry"] for row in body["processed_data"]]
    assert len(set(codes)) == 3 and all(float(code).is_integer() for code in codes)
    assert not any(name.startswith("industry_") for name in body["feature_names"])


def test_placeholders_are_read_as_missing(api: APIClient) -> None:
    body = post(api, RECORDS, {"scaling": "none", "missing_values": ["Select"]}).json()
    assert "industry_Select" not in body["feature_names"]
    assert body["processed_data"][2]["industry_missing"] == 1.0
    assert body["quality_report"]["missing_share"]["industry"] == 0.25


def test_feature_engineering_switches(api: APIClient) -> None:
    off = post(api, RECORDS, {"feature_engineering": {"date_features": False, "email_features": False,
                                                      "seniority": False}}).json()
    names = off["feature_names"]
    assert not any(name.startswith(("created_at__", "email__", "job_title__seniority")) for name in names)
    on = post(api, RECORDS, {"scaling": "none", "feature_engineering": {"interactions": [["visits", "size"]]}}).json()
    assert on["processed_data"][0]["visits__x__size"] == 10.0
    assert [row["created_at__month"] for row in on["processed_data"]] == [1.0, 3.0, 6.0, 2.0]


def test_feature_selection_needs_a_target_and_keeps_k_columns(api: APIClient) -> None:
    response = post(api, RECORDS, {"feature_selection": "k_best", "k": 2})
    assert response.status_code == 400
    assert "config.target" in response.json()["details"]
    labelled = [{**record, "won": index % 2} for index, record in enumerate(RECORDS * 3)]
    body = post(api, labelled, {"feature_selection": "k_best", "k": 2, "target": "won"}).json()
    assert body["processed_shape"] == [12, 2]
    assert len(body["feature_selection"]["kept"]) == 2


@pytest.mark.parametrize(
    ("data", "config", "field"),
    [
        (CRM_RECORD, {"scaling": "cubic"}, "preprocessing.scaling"),
        (CRM_RECORD, {"colour": "blue"}, "config.colour"),
        (CRM_RECORD, {"feature_engineering": {"log": True}}, "feature_engineering.log"),
        ([], {}, "data"),
        ("text", {}, "data"),
        ([CRM_RECORD, 3], {}, "data[1]"),
        ({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}, {}, "a.b.c.d.e"),
        (CRM_RECORD, {"missing_value_strategy": "constant", "fill_value": "abc"}, "preprocessing.fill_value"),
        (CRM_RECORD, {"feature_engineering": ["a"]}, "config.feature_engineering"),
        (CRM_RECORD, {"target": ["y"]}, "config.target"),
        ({"email": "a@b.com", "email__domain": "x"}, {}, "feature_engineering"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api: APIClient, data: Any, config: dict[str, Any], field: str) -> None:
    response = post(api, data, config)
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["success"] is False
    assert field in body["details"], body


def test_preprocess_needs_a_token(client_for: Any) -> None:
    assert client_for(None).post("/preprocess", {"data": CRM_RECORD}, format="json").status_code == 401


def test_extreme_values_are_read_as_missing_not_a_crash(api: APIClient) -> None:
    too_big = post(api, [{"a": 10**400}, {"a": 1}])
    assert too_big.status_code == 400 and "data[0].a" in too_big.json()["details"]
    records = [{"a": 3, "b": 1e200, "created_at": "1700-01-01"}, {"a": 1, "b": 1e200, "created_at": "2026-01-01"}]
    response = post(api, records, {"feature_engineering": {"interactions": [["b", "b"], ["b", "b"]]}, "scaling": "none"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["feature_engineering"]["interactions"] == ["b__x__b"]  # the duplicate pair once
    assert all(value is None or abs(value) < 1e300 for row in body["processed_data"] for value in row.values())


def test_the_original_option_names_are_read_as_ours(api: APIClient) -> None:
    """`scaling_method` and `feature_selection: {method, k}`, as the original service read them."""
    original = post(api, RECORDS, {"scaling_method": "none", "feature_engineering": {"log_transform": False}}).json()
    ours = post(api, RECORDS, {"scaling": "none", "feature_engineering": {"log_transform": False}}).json()
    def timeless(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:  # ages move with the clock between calls
        return [{key: value for key, value in row.items() if not key.endswith("__age_days")} for row in rows]

    assert timeless(original["processed_data"]) == timeless(ours["processed_data"])
    assert original["processed_data"][0]["visits"] == 1.0  # not scaled
    selected = post(api, RECORDS + RECORDS, {"feature_selection": {"method": "k_best", "k": 3}, "target": "visits",
                                             "model_type": "customer_lifetime_value"})
    assert selected.status_code == 200, selected.json()
    assert len(selected.json()["feature_names"]) == 3
    clash = post(api, RECORDS, {"scaling_method": "none", "preprocessing": {"scaling": "minmax"}})
    assert clash.status_code == 400 and "preprocessing.scaling_method" in clash.json()["details"]
    bad = post(api, RECORDS, {"feature_selection": {"method": "k_best", "n": 3}})
    assert bad.status_code == 400 and "preprocessing.feature_selection.n" in bad.json()["details"]

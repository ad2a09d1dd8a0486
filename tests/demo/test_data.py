"""The synthetic CRM data: deterministic, well-formed, and carrying a learnable signal."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from demo.data import REFERENCE_DATE, generate_customers, generate_leads
from leadml.ml.vocabulary import email_domain, is_free_mail, seniority_level

LEAD_COLUMNS = [
    "id",
    "email",
    "job_title",
    "company",
    "company_size",
    "industry",
    "source",
    "lead_score",
    "engagement_score",
    "email_interactions",
    "website_visits",
    "content_downloads",
    "created_at",
    "status",
]
CUSTOMER_COLUMNS = [
    "customer_id",
    "industry",
    "company_size",
    "total_orders",
    "total_spent",
    "avg_order_value",
    "first_purchase_date",
    "last_purchase_date",
    "support_tickets",
    "email",
    "lifetime_value",
]
CONVERTED = {"customer", "won"}
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    return generate_leads()


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return generate_customers()


def converted(leads: pd.DataFrame) -> pd.Series:
    return leads["status"].isin(CONVERTED).astype(int)


def days_before_reference(iso_dates: pd.Series) -> pd.Series:
    return (pd.Timestamp(REFERENCE_DATE) - pd.to_datetime(iso_dates, format="%Y-%m-%d")).dt.days


def test_leads_are_identical_for_the_same_seed_and_differ_for_another() -> None:
    pd.testing.assert_frame_equal(generate_leads(300, seed=3), generate_leads(300, seed=3))
    assert not generate_leads(300, seed=3).equals(generate_leads(300, seed=4))


def test_customers_are_identical_for_the_same_seed_and_differ_for_another() -> None:
    pd.testing.assert_frame_equal(generate_customers(300, seed=3), generate_customers(300, seed=3))
    assert not generate_customers(300, seed=3).equals(generate_customers(300, seed=4))


def test_leads_have_the_documented_columns_and_plain_dtypes(leads: pd.DataFrame) -> None:
    assert list(leads.columns) == LEAD_COLUMNS
    assert len(leads) == 3000
    assert leads["company_size"].dtype == np.float64
    for name in ("lead_score", "engagement_score", "email_interactions", "website_visits", "content_downloads"):
        assert leads[name].dtype == np.int64, name
    for name in ("id", "email", "job_title", "company", "industry", "source", "created_at", "status"):
        assert leads[name].map(type).eq(str).all(), name
    assert leads["id"].iloc[0] == "lead-000001"
    assert leads["id"].is_unique


def test_lead_values_stay_in_their_documented_ranges(leads: pd.DataFrame) -> None:
    assert leads["lead_score"].between(0, 100).all()
    assert leads["engagement_score"].between(0, 100).all()
    for name in ("email_interactions", "website_visits", "content_downloads"):
        assert (leads[name] >= 0).all(), name
    assert set(leads["industry"]) == {
        "Technology",
        "Finance",
        "Healthcare",
        "Retail",
        "Manufacturing",
        "Education",
        "Other",
    }
    assert set(leads["source"]) == {"website", "referral", "webinar", "paid_search", "cold_call", "trade_show"}
    assert set(leads["status"]) == {"customer", "won", "lost", "disqualified"}
    assert leads["created_at"].str.match(ISO_DATE).all()
    age_days = days_before_reference(leads["created_at"])
    assert age_days.between(1, 730).all()


def test_company_size_is_between_1_and_20000_with_about_5_percent_missing(leads: pd.DataFrame) -> None:
    sizes = leads["company_size"]
    assert 0.03 <= sizes.isna().mean() <= 0.07
    present = sizes.dropna()
    assert present.between(1, 20000).all()
    assert (present == present.round()).all()
    # Log-normal-ish: many small companies and a long tail of large ones.
    assert present.median() < 200 < present.quantile(0.9)


def test_lead_emails_mix_free_mail_and_company_domains(leads: pd.DataFrame) -> None:
    domains = leads["email"].map(email_domain)
    assert domains.notna().all()
    free_mail = domains.map(is_free_mail)
    assert 0.28 <= free_mail.mean() <= 0.42
    # A business address is first.last at the company's own domain.
    business = leads[~free_mail]
    for email, company in zip(business["email"].head(50), business["company"].head(50), strict=True):
        local, domain = email.split("@")
        assert "." in local
        assert domain.rsplit(".", 1)[0].replace("-", "") == company.lower().replace(" ", "")


def test_lead_positive_rate_is_between_20_and_30_percent(leads: pd.DataFrame) -> None:
    assert 0.20 <= converted(leads).mean() <= 0.30


def test_lead_conversion_follows_the_documented_effects(leads: pd.DataFrame) -> None:
    outcome = converted(leads)
    free_mail = leads["email"].map(lambda email: is_free_mail(email_domain(email)))
    seniority = leads["job_title"].map(seniority_level)
    assert outcome[~free_mail].mean() > outcome[free_mail].mean() + 0.08
    assert outcome[seniority >= 4].mean() > outcome[seniority == 1].mean() + 0.2
    assert outcome[leads["source"] == "referral"].mean() > outcome[leads["source"] == "cold_call"].mean() + 0.15
    high_engagement = leads["engagement_score"] >= 65
    assert outcome[high_engagement].mean() > outcome[~high_engagement].mean() + 0.1


def lead_model_inputs(leads: pd.DataFrame) -> pd.DataFrame:
    inputs = leads[
        [
            "company_size",
            "industry",
            "source",
            "lead_score",
            "engagement_score",
            "email_interactions",
            "website_visits",
            "content_downloads",
        ]
    ].copy()
    inputs["free_mail"] = leads["email"].map(lambda email: float(is_free_mail(email_domain(email))))
    inputs["seniority"] = leads["job_title"].map(seniority_level).astype(float)
    inputs["age_days"] = days_before_reference(leads["created_at"]).astype(float)
    return inputs


def test_lead_conversion_is_learnable_by_gradient_boosting(leads: pd.DataFrame) -> None:
    inputs = lead_model_inputs(leads)
    outcome = converted(leads)
    train_inputs, test_inputs, train_outcome, test_outcome = train_test_split(
        inputs, outcome, test_size=0.25, random_state=0, stratify=outcome
    )
    model = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [("categories", OneHotEncoder(handle_unknown="ignore"), ["industry", "source"])],
                    remainder="passthrough",
                    sparse_threshold=0.0,
                ),
            ),
            ("model", HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, random_state=0)),
        ]
    ).fit(train_inputs, train_outcome)
    roc_auc = roc_auc_score(test_outcome, model.predict_proba(test_inputs)[:, 1])
    assert roc_auc > 0.75


def test_customers_have_the_documented_columns_and_plain_dtypes(customers: pd.DataFrame) -> None:
    assert list(customers.columns) == CUSTOMER_COLUMNS
    assert len(customers) == 2000
    for name in ("company_size", "total_spent", "avg_order_value", "lifetime_value"):
        assert customers[name].dtype == np.float64, name
    for name in ("total_orders", "support_tickets"):
        assert customers[name].dtype == np.int64, name
    for name in ("customer_id", "industry", "first_purchase_date", "last_purchase_date", "email"):
        assert customers[name].map(type).eq(str).all(), name
    assert customers["customer_id"].iloc[0] == "cust-00001"
    assert customers["customer_id"].is_unique
    assert customers["company_size"].isna().any()


def test_customer_history_is_consistent(customers: pd.DataFrame) -> None:
    assert (customers["total_orders"] >= 1).all()
    assert (customers["support_tickets"] >= 0).all()
    assert (customers["total_spent"] > 0).all()
    assert (customers["total_spent"] == customers["total_spent"].round(2)).all()
    implied_average = customers["total_spent"] / customers["total_orders"]
    assert np.allclose(customers["avg_order_value"], implied_average, atol=0.01)
    assert customers["first_purchase_date"].str.match(ISO_DATE).all()
    assert customers["last_purchase_date"].str.match(ISO_DATE).all()
    first = pd.to_datetime(customers["first_purchase_date"])
    last = pd.to_datetime(customers["last_purchase_date"])
    assert (last >= first).all()
    assert (last < pd.Timestamp(REFERENCE_DATE)).all()
    assert first.min() >= pd.Timestamp(REFERENCE_DATE - timedelta(days=1460))
    single_order = customers["total_orders"] == 1
    assert (first[single_order] == last[single_order]).all()


def test_customer_lifetime_value_is_non_negative_with_lapsed_customers_at_zero(customers: pd.DataFrame) -> None:
    value = customers["lifetime_value"]
    assert (value >= 0).all()
    assert 0.2 <= (value == 0).mean() <= 0.7
    recency = days_before_reference(customers["last_purchase_date"])
    assert value[recency < 120].mean() > 3 * value[recency > 365].mean()


def test_customer_lifetime_value_is_learnable_by_a_random_forest(customers: pd.DataFrame) -> None:
    inputs = customers[["company_size", "total_orders", "total_spent", "avg_order_value", "support_tickets"]].copy()
    inputs["company_size"] = inputs["company_size"].fillna(inputs["company_size"].median())
    inputs["days_since_last_purchase"] = days_before_reference(customers["last_purchase_date"])
    inputs["days_since_first_purchase"] = days_before_reference(customers["first_purchase_date"])
    inputs["free_mail"] = customers["email"].map(lambda email: float(is_free_mail(email_domain(email))))
    model = RandomForestRegressor(n_estimators=60, min_samples_leaf=5, random_state=0, n_jobs=1)
    # Cross-validated: the target's long tail makes one split's R² swing by +-0.08.
    r2_scores = cross_val_score(
        model, inputs, customers["lifetime_value"], cv=KFold(5, shuffle=True, random_state=0), scoring="r2"
    )
    assert r2_scores.mean() > 0.4


def test_reference_date_is_fixed_so_output_does_not_depend_on_today() -> None:
    assert date(2026, 6, 30) == REFERENCE_DATE
    newest = pd.to_datetime(generate_leads(500)["created_at"]).max()
    assert newest < pd.Timestamp(REFERENCE_DATE)


def test_demo_data_never_imports_django() -> None:
    code = (
        "import sys; import demo.data; "
        "assert 'django' not in sys.modules, sorted(m for m in sys.modules if m.startswith('django'))"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


def test_the_command_line_writes_the_generated_rows_as_csv() -> None:
    # The README's `python -m demo.data leads|customers [N] [--seed S]`.
    completed = subprocess.run(
        [sys.executable, "-m", "demo.data", "leads", "20", "--seed", "3"], cwd=REPO, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    written = pd.read_csv(io.StringIO(completed.stdout))
    assert list(written.columns) == LEAD_COLUMNS
    assert written["id"].tolist() == generate_leads(20, seed=3)["id"].tolist()

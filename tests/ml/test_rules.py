"""The rule-based fallback scorers: documented, deterministic and robust to bad input."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from dataclasses import FrozenInstanceError
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from leadml.ml.rules import (
    BASE_SCORE,
    Reason,
    estimate_lifetime_value_by_rules,
    probability_from_score,
    score_lead_by_rules,
)

AS_OF = date(2026, 6, 30)
STRONG_LEAD: dict[str, object] = {
    "email": "Jane.Doe@Acme-Analytics.com",
    "job_title": "CEO",
    "company_size": 800,
    "engagement_score": 85,
    "email_interactions": 5,
    "website_visits": 10,
    "content_downloads": 3,
}
WEAK_LEAD: dict[str, object] = {
    "email": "jane.doe1999@gmail.com",
    "job_title": "Student",
    "engagement_score": 0,
    "email_interactions": 0,
    "website_visits": 0,
    "content_downloads": 0,
}
REGULAR_CUSTOMER: dict[str, object] = {
    "avg_order_value": 200.0,
    "total_orders": 12,
    "first_purchase_date": "2024-06-30",
    "last_purchase_date": "2026-06-01",
}


def test_business_email_scores_higher_than_free_mail() -> None:
    business = score_lead_by_rules({"email": "ana@northwind-labs.io"})
    free_mail = score_lead_by_rules({"email": "ana@gmail.com"})
    nothing = score_lead_by_rules({})
    assert business.score > nothing.score > free_mail.score
    assert business.reasons[0] == Reason("email", 15.0, "business email domain (northwind-labs.io)")


def test_ceo_with_business_email_and_engagement_outscores_student_with_gmail() -> None:
    strong = score_lead_by_rules(STRONG_LEAD)
    weak = score_lead_by_rules(WEAK_LEAD)
    assert strong.score >= 85
    assert weak.score <= 5
    assert strong.conversion_probability > 0.9
    assert weak.conversion_probability < 0.1


@pytest.mark.parametrize(
    ("senior_title", "junior_title"),
    [
        ("Chief Technology Officer", "VP Sales"),
        ("VP Sales", "Head of Marketing"),
        ("Director of IT", "Marketing Manager"),
        ("Senior Manager", "Analyst"),
        ("Software Engineer", "Intern"),
    ],
)
def test_more_senior_title_scores_higher(senior_title: str, junior_title: str) -> None:
    senior = score_lead_by_rules({"job_title": senior_title})
    junior = score_lead_by_rules({"job_title": junior_title})
    assert senior.score > junior.score


def test_probability_is_monotone_in_score_and_centred_at_50() -> None:
    probabilities = [probability_from_score(score) for score in range(101)]
    assert all(lower < higher for lower, higher in itertools.pairwise(probabilities))
    assert probability_from_score(50) == 0.5
    assert probabilities[0] >= 0.01
    assert probabilities[-1] <= 0.99
    assert probability_from_score(-500) == 0.01
    assert probability_from_score(500) == 0.99


def test_scored_leads_rank_the_same_by_score_and_probability() -> None:
    records: list[dict[str, object]] = [
        WEAK_LEAD,
        {},
        {"email": "x@acme.com"},
        {"email": "x@acme.com", "job_title": "Director of IT"},
        {"email": "x@acme.com", "job_title": "Director of IT", "company_size": 2000, "engagement_score": 60},
        STRONG_LEAD,
    ]
    results = [score_lead_by_rules(record) for record in records]
    scores = [result.score for result in results]
    probabilities = [result.conversion_probability for result in results]
    assert scores == sorted(scores)
    assert probabilities == sorted(probabilities)
    assert len(set(scores)) == len(scores)


@pytest.mark.parametrize(
    "record",
    [
        {"email": "x@acme.com", "job_title": "Marketing Manager", "company_size": 120, "website_visits": 3},
        {"email": "x@gmail.com", "job_title": "Analyst", "engagement_score": 40, "content_downloads": 1},
        {"job_title": "Intern", "company_size": 5, "email_interactions": 2},
        {"email": "x@acme.com", "engagement_score": 50, "lead_score": 90},
    ],
)
def test_reasons_add_up_to_score_minus_base(record: dict[str, object]) -> None:
    result = score_lead_by_rules(record)
    assert 0 < result.score < 100  # away from the clamps
    total = sum(reason.contribution for reason in result.reasons)
    assert abs(BASE_SCORE + total - result.score) <= 0.5


def test_reasons_are_ordered_by_absolute_contribution() -> None:
    result = score_lead_by_rules({**STRONG_LEAD, "email": "x@hotmail.com", "lead_score": 10})
    magnitudes = [abs(reason.contribution) for reason in result.reasons]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert {reason.feature for reason in result.reasons} == {
        "email",
        "job_title",
        "company_size",
        "engagement_score",
        "email_interactions",
        "website_visits",
        "content_downloads",
        "lead_score",
    }
    assert any(reason.contribution < 0 for reason in result.reasons)


def test_larger_companies_score_higher_in_bands() -> None:
    scores = [score_lead_by_rules({"company_size": size}).score for size in (3, 25, 120, 600, 2500, 15000)]
    assert scores == sorted(scores)
    assert len(set(scores)) == len(scores)
    assert score_lead_by_rules({"company_size": 120}).score == score_lead_by_rules({"company_size": 200}).score


def test_engagement_counts_are_capped() -> None:
    for field in ("email_interactions", "website_visits", "content_downloads"):
        some = score_lead_by_rules({field: 2}).score
        many = score_lead_by_rules({field: 50}).score
        absurd = score_lead_by_rules({field: 100000}).score
        assert some < many == absurd, field
    assert score_lead_by_rules({"engagement_score": 100}).score == score_lead_by_rules({"engagement_score": 500}).score


def test_crm_lead_score_is_blended_in() -> None:
    base = score_lead_by_rules({"email": "x@acme.com"}).score
    high = score_lead_by_rules({"email": "x@acme.com", "lead_score": 95}).score
    low = score_lead_by_rules({"email": "x@acme.com", "lead_score": 0}).score
    assert low < base < high
    assert high - base == round(0.3 * (95 - base))


def test_numeric_strings_and_size_bands_are_read_like_numbers() -> None:
    as_numbers = score_lead_by_rules({"company_size": 1200, "website_visits": 7, "engagement_score": 55.5})
    as_strings = score_lead_by_rules({"company_size": "1,200", "website_visits": " 7 ", "engagement_score": "55.5"})
    assert as_strings == as_numbers
    band = score_lead_by_rules({"company_size": "51-200"})
    assert band.score == score_lead_by_rules({"company_size": 125}).score
    assert score_lead_by_rules({"company_size": "10000+"}).score == score_lead_by_rules({"company_size": 10000}).score


def test_field_names_are_matched_case_insensitively_with_common_aliases() -> None:
    canonical = score_lead_by_rules({"email": "x@acme.com", "job_title": "CTO", "company_size": 300})
    aliased = score_lead_by_rules({"Email_Address": "x@acme.com", "Title": "CTO", "Employees": 300})
    assert aliased.score == canonical.score


@pytest.mark.parametrize(
    "record",
    [
        {},
        {"email": None, "job_title": None, "company_size": None, "engagement_score": None},
        {"email": "", "job_title": "", "company_size": "", "engagement_score": "", "lead_score": ""},
        {"email": "n/a", "job_title": "n/a", "company_size": "n/a", "website_visits": "n/a"},
        {"email": 5, "job_title": ["CEO"], "company_size": "abc", "engagement_score": float("nan")},
        {"website_visits": "inf", "content_downloads": -4, "email_interactions": True, "lead_score": 250},
        {"company_size": float("inf"), "engagement_score": {"a": 1}, "lead_score": object()},
        {"email": "not an email", "job_title": 3.5, "company_size": -20, "source": None},
        {"company_size": np.int64(40), "website_visits": np.float64(3.0), "engagement_score": np.nan},
        {None: "x", 3: 4, "job_title": "\u00e9\u00e8\u00ea"},
    ],
)
def test_garbage_lead_input_never_raises(record: dict[object, object]) -> None:
    result = score_lead_by_rules(record)  # type: ignore[arg-type]
    assert 0 <= result.score <= 100
    assert 0.0 < result.conversion_probability < 1.0


def test_unreadable_values_are_ignored_not_guessed() -> None:
    assert score_lead_by_rules({"company_size": "abc", "engagement_score": "high"}) == score_lead_by_rules({})


def test_results_are_frozen() -> None:
    result = score_lead_by_rules(STRONG_LEAD)
    with pytest.raises(FrozenInstanceError):
        result.score = 0  # type: ignore[misc]


def test_lifetime_value_is_average_order_value_times_expected_orders_times_alive_factor() -> None:
    result = estimate_lifetime_value_by_rules(REGULAR_CUSTOMER, as_of=AS_OF)
    tenure_days = (AS_OF - date(2024, 6, 30)).days
    expected_orders = 12 / tenure_days * 365
    alive_factor = math.exp(-(AS_OF - date(2026, 6, 1)).days / 365)
    assert result.lifetime_value == pytest.approx(200.0 * expected_orders * alive_factor, abs=0.01)
    assert result.lifetime_value > 0
    assert sum(reason.contribution for reason in result.reasons) == pytest.approx(result.lifetime_value, abs=0.05)


def test_lifetime_value_grows_with_order_rate() -> None:
    occasional = estimate_lifetime_value_by_rules({**REGULAR_CUSTOMER, "total_orders": 3}, as_of=AS_OF)
    frequent = estimate_lifetime_value_by_rules({**REGULAR_CUSTOMER, "total_orders": 30}, as_of=AS_OF)
    assert frequent.lifetime_value > 5 * occasional.lifetime_value


def test_lifetime_value_shrinks_with_recency() -> None:
    values = [
        estimate_lifetime_value_by_rules({**REGULAR_CUSTOMER, "last_purchase_date": last}, as_of=AS_OF).lifetime_value
        for last in ("2026-06-29", "2026-01-01", "2025-06-30", "2024-07-01")
    ]
    assert values == sorted(values, reverse=True)
    assert values[-1] < 0.2 * values[0]


def test_lifetime_value_uses_as_of() -> None:
    soon = estimate_lifetime_value_by_rules(REGULAR_CUSTOMER, as_of=date(2026, 6, 30))
    later = estimate_lifetime_value_by_rules(REGULAR_CUSTOMER, as_of=date(2027, 6, 30))
    assert later.lifetime_value < soon.lifetime_value
    as_datetime = estimate_lifetime_value_by_rules(REGULAR_CUSTOMER, as_of=datetime(2026, 6, 30, 15, 0))
    assert as_datetime == soon


def test_lifetime_value_reads_iso_datetimes_and_numeric_strings() -> None:
    plain = estimate_lifetime_value_by_rules(REGULAR_CUSTOMER, as_of=AS_OF)
    variant = estimate_lifetime_value_by_rules(
        {
            "avg_order_value": "200",
            "total_orders": "12",
            "first_purchase_date": "2024-06-30T09:15:00Z",
            "last_purchase_date": datetime(2026, 6, 1, 18, 30, tzinfo=UTC),
        },
        as_of=AS_OF,
    )
    assert variant.lifetime_value == plain.lifetime_value


def test_lifetime_value_derives_average_order_value_from_total_spent() -> None:
    record = {key: value for key, value in REGULAR_CUSTOMER.items() if key != "avg_order_value"}
    derived = estimate_lifetime_value_by_rules({**record, "total_spent": 2400.0}, as_of=AS_OF)
    direct = estimate_lifetime_value_by_rules(REGULAR_CUSTOMER, as_of=AS_OF)
    assert derived.lifetime_value == direct.lifetime_value
    assert "total_spent" in {reason.feature for reason in derived.reasons}


def test_lifetime_value_falls_back_to_one_order_without_purchase_history() -> None:
    assert estimate_lifetime_value_by_rules({"avg_order_value": 150}, as_of=AS_OF).lifetime_value == 150.0
    no_first_date = estimate_lifetime_value_by_rules({"avg_order_value": 150, "total_orders": 9}, as_of=AS_OF)
    assert no_first_date.lifetime_value == 150.0


def test_lifetime_value_counts_at_least_30_days_of_tenure() -> None:
    brand_new = {"avg_order_value": 100, "total_orders": 1, "first_purchase_date": "2026-06-29"}
    result = estimate_lifetime_value_by_rules(brand_new, as_of=AS_OF)
    assert result.lifetime_value == pytest.approx(100 * 365 / 30, abs=0.01)


def test_lifetime_value_is_zero_without_any_order_value() -> None:
    result = estimate_lifetime_value_by_rules({"total_orders": 4, "first_purchase_date": "2025-01-01"}, as_of=AS_OF)
    assert result.lifetime_value == 0.0
    assert result.reasons


@pytest.mark.parametrize(
    "record",
    [
        {},
        {"avg_order_value": None, "total_orders": None, "first_purchase_date": None, "last_purchase_date": None},
        {"avg_order_value": "abc", "total_spent": "n/a", "total_orders": "", "first_purchase_date": "yesterday"},
        {"avg_order_value": -50, "total_spent": -100, "total_orders": -2},
        {"avg_order_value": 100, "first_purchase_date": "2030-01-01", "last_purchase_date": "2031-13-45"},
        {"avg_order_value": float("nan"), "total_spent": float("inf"), "total_orders": 0},
        {"avg_order_value": 80, "total_orders": 4, "first_purchase_date": 20240101, "last_purchase_date": ["x"]},
    ],
)
def test_garbage_customer_input_never_raises_and_is_never_negative(record: dict[str, object]) -> None:
    result = estimate_lifetime_value_by_rules(record, as_of=AS_OF)
    assert result.lifetime_value >= 0.0
    assert math.isfinite(result.lifetime_value)


def test_rule_modules_do_not_import_django() -> None:
    code = "import sys, leadml.ml.rules; sys.exit('django' in sys.modules)"
    repository_root = Path(__file__).resolve().parents[2]
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=repository_root
    )
    assert completed.returncode == 0, completed.stderr or "django was imported"

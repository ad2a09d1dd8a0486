"""Rule-based fallback scorers, used when a tenant has no usable model.

Both scorers are deterministic, need no training data, never raise on malformed input
(a field that cannot be read is skipped), and return every rule that contributed as a
`Reason`, so the answer can be explained line by line.

Lead conversion: `score_lead_by_rules`
--------------------------------------
A lead starts at ``BASE_SCORE`` (20) points and each rule adds signed points:

==========================  ===============================================================
rule (input field)          points
==========================  ===============================================================
email domain (``email``)    business domain +15; free-mail domain (gmail.com, ...) -10
job title (``job_title``)   by `seniority_level`: C-level/founder/owner/president +20,
                            VP +17, director/head +14, manager/senior/lead +8,
                            individual contributor +2, intern/student/trainee -10
company size                1-9 employees -4, 10-49 +1, 50-249 +4, 250-999 +7,
(``company_size``)          1000-4999 +10, 5000 and more +12
``engagement_score``        0.15 per point of 0..100 (at most +15)
``email_interactions``      +1 each, counted up to 6 (at most +6)
``website_visits``          +0.5 each, counted up to 12 (at most +6)
``content_downloads``       +2 each, counted up to 4 (at most +8)
``lead_score`` (the CRM's)  blended in at 30%: 0.3 x (CRM score - rule score so far)
==========================  ===============================================================

The rule score so far is clamped to 0..100 before the CRM score is blended in, and the
final score is rounded and clamped to 0..100. Away from the clamps, the score equals
``BASE_SCORE`` plus the sum of the reasons' contributions.

The score becomes a probability through a logistic curve centred at 50:
``conversion_probability = 1 / (1 + exp(-(score - 50) / 12))``, clipped to [0.01, 0.99].
Score 50 maps to 0.5, 20 (a lead nothing is known about) to about 0.08, 80 to about 0.92.
The mapping is a convention, not a calibration: it orders leads sensibly until a model
trained on the tenant's own outcomes replaces it.

Field names are matched case-insensitively; ``title``, ``position`` and ``role`` are
read as the job title, ``email_address`` as the email and ``employees`` /
``employee_count`` as the company size. Numbers may arrive as strings ("12", "1,200");
a company size may be a band ("51-200" reads as its midpoint, "10000+" as 10000).
E-mail domains, free-mail providers and seniority levels are read by
`leadml.ml.vocabulary`, as the trained models' features read them.

Customer lifetime value: `estimate_lifetime_value_by_rules`
-----------------------------------------------------------
::

    lifetime_value = average order value x expected orders x alive factor

- average order value: ``avg_order_value``, else ``total_spent / total_orders``;
- expected orders over the horizon (default 365 days):
  ``total_orders / tenure_days x horizon_days``, where the tenure runs from
  ``first_purchase_date`` to the ``as_of`` date (today by default), at least 30 days;
- alive factor: ``exp(-days_since_last_purchase / 365)``, 1 when the last purchase date
  is unknown.

Without a purchase history (no ``total_orders`` or no ``first_purchase_date``) the
expected orders fall back to 1. Without any order value the estimate is 0. The reasons
split the value into three additive parts: one order at the average value, the extra
orders the historic rate predicts, and the discount for recency.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from leadml.ml.vocabulary import (
    JOB_TITLE_FIELDS,
    PLACEHOLDER_TEXTS,
    SENIORITY_LABELS,
    email_domain,
    is_free_mail,
    seniority_level,
)

BASE_SCORE = 20
BUSINESS_EMAIL_POINTS = 15.0
FREE_MAIL_POINTS = -10.0
SENIORITY_POINTS: dict[int, float] = {6: 20.0, 5: 17.0, 4: 14.0, 3: 8.0, 2: 2.0, 1: -10.0}
# (lower bound inclusive, upper bound exclusive, points, label)
COMPANY_SIZE_BANDS: tuple[tuple[float, float, float, str], ...] = (
    (1, 10, -4.0, "1-9"),
    (10, 50, 1.0, "10-49"),
    (50, 250, 4.0, "50-249"),
    (250, 1000, 7.0, "250-999"),
    (1000, 5000, 10.0, "1000-4999"),
    (5000, math.inf, 12.0, "5000+"),
)
ENGAGEMENT_SCORE_POINTS_PER_UNIT = 0.15
# (field, points per unit, units counted at most, plural noun for the reason)
ENGAGEMENT_COUNT_RULES: tuple[tuple[str, float, float, str], ...] = (
    ("email_interactions", 1.0, 6, "email interactions"),
    ("website_visits", 0.5, 12, "website visits"),
    ("content_downloads", 2.0, 4, "content downloads"),
)
CRM_LEAD_SCORE_WEIGHT = 0.3
PROBABILITY_CENTRE = 50.0
PROBABILITY_SCALE = 12.0
PROBABILITY_FLOOR = 0.01
PROBABILITY_CEILING = 0.99

MINIMUM_TENURE_DAYS = 30
RECENCY_DECAY_DAYS = 365.0


@dataclass(frozen=True)
class Reason:
    """One rule that fired for a record, with what it added to the result."""

    feature: str  # input field the reason is about, e.g. "email"
    contribution: float  # signed: score points (lead) or currency (CLV)
    description: str  # human sentence, e.g. "business email domain (acme.com)"


@dataclass(frozen=True)
class RuleLeadScore:
    score: int  # 0..100
    conversion_probability: float  # score mapped to a probability in (0, 1)
    reasons: tuple[Reason, ...]  # every rule that fired, ordered by |contribution| desc


@dataclass(frozen=True)
class RuleLifetimeValue:
    lifetime_value: float  # >= 0
    reasons: tuple[Reason, ...]
    # How much the estimate rests on: 0.1, plus 0.1 for each of an order value, an order
    # rate (orders and first purchase) and a recency (last purchase) in the record. A
    # heuristic never claims more than 0.4.
    confidence: float = 0.1


def score_lead_by_rules(record: Mapping[str, object]) -> RuleLeadScore:
    """Score a lead 0..100 with the documented rules and map it to a probability."""
    fields = _lowercase_keys(record)
    reasons: list[Reason] = []

    email_field, email_value = _first_present(fields, ("email", "email_address"))
    domain = email_domain(email_value)
    if domain is not None:
        if is_free_mail(domain):
            reasons.append(Reason(email_field, FREE_MAIL_POINTS, f"free-mail address ({domain})"))
        else:
            reasons.append(Reason(email_field, BUSINESS_EMAIL_POINTS, f"business email domain ({domain})"))

    title_field, title_value = _first_present(fields, JOB_TITLE_FIELDS)
    level = seniority_level(title_value)
    if level in SENIORITY_POINTS:
        title = " ".join(str(title_value).split())
        reasons.append(Reason(title_field, SENIORITY_POINTS[level], f"job title {title!r} ({SENIORITY_LABELS[level]})"))

    size_field, size_value = _first_present(fields, ("company_size", "employees", "employee_count", "num_employees"))
    company_size = _parse_company_size(size_value)
    if company_size is not None and company_size >= 1:
        for lower, upper, points, label in COMPANY_SIZE_BANDS:
            if lower <= company_size < upper:
                reasons.append(Reason(size_field, points, f"company size {company_size:,.0f} employees ({label} band)"))
                break

    reasons += _engagement_reasons(fields)

    rule_score = _clamp(BASE_SCORE + sum(reason.contribution for reason in reasons), 0.0, 100.0)
    crm_score = _parse_number(fields.get("lead_score"))
    if crm_score is not None and 0 <= crm_score <= 100:
        blend = round(CRM_LEAD_SCORE_WEIGHT * (crm_score - rule_score), 2)
        if blend != 0:
            reasons.append(
                Reason(
                    "lead_score",
                    blend,
                    f"CRM lead score {crm_score:g} blended in at {CRM_LEAD_SCORE_WEIGHT:.0%}",
                )
            )
        rule_score = _clamp(rule_score + blend, 0.0, 100.0)

    score = round(rule_score)
    return RuleLeadScore(
        score=score,
        conversion_probability=probability_from_score(score),
        reasons=_ordered(reasons),
    )


def _engagement_reasons(fields: Mapping[str, object]) -> list[Reason]:
    """The engagement score's points, then each capped engagement count's."""
    reasons: list[Reason] = []
    engagement_score = _parse_number(fields.get("engagement_score"))
    if engagement_score is not None and engagement_score > 0:
        capped = min(engagement_score, 100.0)
        reasons.append(
            Reason(
                "engagement_score",
                round(capped * ENGAGEMENT_SCORE_POINTS_PER_UNIT, 2),
                f"engagement score {capped:g}/100",
            )
        )
    for field, points_per_unit, cap, noun in ENGAGEMENT_COUNT_RULES:
        count = _parse_number(fields.get(field))
        if count is not None and count > 0:
            counted = min(count, cap)
            description = f"{count:g} {noun}" + (f" (counted up to {cap:g})" if count > cap else "")
            reasons.append(Reason(field, round(counted * points_per_unit, 2), description))
    return reasons


def probability_from_score(score: float) -> float:
    """Map a 0..100 rule score to a conversion probability (logistic, centred at 50)."""
    probability = 1.0 / (1.0 + math.exp(-(score - PROBABILITY_CENTRE) / PROBABILITY_SCALE))
    return round(_clamp(probability, PROBABILITY_FLOOR, PROBABILITY_CEILING), 6)


def estimate_lifetime_value_by_rules(
    record: Mapping[str, object], *, horizon_days: int = 365, as_of: date | None = None
) -> RuleLifetimeValue:
    """Estimate a customer's spend over the next `horizon_days` from their order history."""
    fields = _lowercase_keys(record)
    today = _to_date(as_of) or date.today()
    horizon = max(float(horizon_days), 0.0)

    total_orders = _parse_number(fields.get("total_orders"))
    total_spent = _parse_number(fields.get("total_spent"))
    average_order_value = _parse_number(fields.get("avg_order_value"))
    value_source = "avg_order_value"
    if average_order_value is None or average_order_value <= 0:
        average_order_value = None
        if total_spent is not None and total_spent > 0 and total_orders is not None and total_orders >= 1:
            average_order_value = total_spent / total_orders
            value_source = "total_spent"
    if average_order_value is None:
        return RuleLifetimeValue(
            lifetime_value=0.0,
            reasons=(Reason("avg_order_value", 0.0, "no order value in the record; estimate is 0"),),
        )

    reasons = [Reason(value_source, round(average_order_value, 2), f"average order value {average_order_value:,.2f}")]
    first_purchase = _to_date(fields.get("first_purchase_date"))
    last_purchase = _to_date(fields.get("last_purchase_date"))

    expected_orders = 1.0
    if total_orders is not None and total_orders >= 1 and first_purchase is not None:
        # Customer age, not first-to-last span: a one-order customer would otherwise have
        # a zero span and a huge rate, and recency is already priced in by the alive factor.
        tenure_days = max((today - first_purchase).days, MINIMUM_TENURE_DAYS)
        orders_per_day = total_orders / tenure_days
        expected_orders = orders_per_day * horizon
        reasons.append(
            Reason(
                "total_orders",
                round(average_order_value * (expected_orders - 1.0), 2),
                f"{total_orders:g} orders in {tenure_days} days: {expected_orders:.2f} expected "
                f"in the next {horizon:g} days",
            )
        )

    alive_factor = 1.0
    if last_purchase is not None:
        days_since_last_purchase = max((today - last_purchase).days, 0)
        alive_factor = math.exp(-days_since_last_purchase / RECENCY_DECAY_DAYS)
        reasons.append(
            Reason(
                "last_purchase_date",
                round(average_order_value * expected_orders * (alive_factor - 1.0), 2),
                f"last purchase {days_since_last_purchase} days ago (still-active factor {alive_factor:.2f})",
            )
        )

    lifetime_value = max(average_order_value * expected_orders * alive_factor, 0.0)
    evidence = 1 + (len(reasons) - 1)  # the order value, then the rate and recency reasons that applied
    return RuleLifetimeValue(
        lifetime_value=round(lifetime_value, 2), reasons=_ordered(reasons), confidence=round(0.1 + 0.1 * evidence, 2)
    )


def _lowercase_keys(record: Mapping[str, object]) -> dict[str, object]:
    if not isinstance(record, Mapping):
        return {}
    return {str(key).strip().lower(): value for key, value in record.items()}


def _first_present(fields: Mapping[str, object], names: tuple[str, ...]) -> tuple[str, object]:
    """Return the first of `names` holding a non-empty value (or the first name, None)."""
    for name in names:
        value = fields.get(name)
        blank_text = isinstance(value, str) and not value.strip()
        not_a_number = isinstance(value, float) and math.isnan(value)
        if value is not None and not blank_text and not not_a_number:
            return name, value
    return names[0], None


def _parse_number(value: object) -> float | None:
    """Read a finite number from a number or numeric string; anything else is None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, numbers.Real):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "")
        if text.lower() in PLACEHOLDER_TEXTS:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _parse_company_size(value: object) -> float | None:
    """Read an employee count, accepting CRM bands such as "51-200" or "10000+"."""
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        band = re.fullmatch(r"(\d+)\s*[-\u2013]\s*(\d+)", text)
        if band:
            return (float(band.group(1)) + float(band.group(2))) / 2.0
        if text.endswith("+"):
            return _parse_number(text[:-1])
    return _parse_number(value)


def _to_date(value: object) -> date | None:
    """Read a date from a date, datetime or ISO string; anything else is None."""
    try:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            text = value.strip()
            try:
                return datetime.fromisoformat(text).date()
            except ValueError:
                return date.fromisoformat(text[:10])
    except (ValueError, TypeError, AttributeError):
        # pandas' NaT is a datetime whose .date() fails; garbage strings fail to parse.
        return None
    return None


def _clamp(value: float, lowest: float, highest: float) -> float:
    return min(max(value, lowest), highest)


def _ordered(reasons: list[Reason]) -> tuple[Reason, ...]:
    # sorted() is stable, so equal contributions keep the rule order above.
    return tuple(sorted(reasons, key=lambda reason: -abs(reason.contribution)))

"""Synthetic CRM data with a learnable signal, for demos, smoke tests and benchmarks.

Both generators are deterministic for a given ``seed`` (every draw comes from one
``numpy.random.default_rng(seed)``) and date everything relative to a fixed reference
date, ``REFERENCE_DATE`` (2026-06-30), so the output never depends on today's date.

Leads: `generate_leads`
-----------------------
Each lead gets a company (generated name, an industry, a log-normal employee count,
median about 60, clipped to 1..20000, missing for about 5% of leads), a contact whose
job title comes from one of six seniority tiers (C-level/founder, VP, director/head,
manager, individual contributor, intern/student) and an email address
``first.last@domain``: about 35% use a free-mail domain (gmail.com, yahoo.com, ...;
interns and students far more often), the rest the company's own domain
(``acme-analytics.com``). A lead source (website, referral, webinar, paid_search,
cold_call, trade_show) shifts a latent interest ``z ~ N(0, 1)``, which drives the
engagement columns: ``engagement_score`` (0..100) and the Poisson counts
``email_interactions``, ``website_visits`` and ``content_downloads`` (means growing with
``z``). ``lead_score`` imitates a CRM's own score: a noisy mix of title and engagement.
``created_at`` is uniform over the 730 days before the reference date.

A lead converts with probability ``sigmoid(logit)`` (one Bernoulli draw), where::

    logit = -3.9
            + 1.2 * business (non-free-mail) email domain
            + seniority  (intern/student -1.6, individual contributor 0, manager +0.5,
                          director/head +1.0, VP +1.2, C-level/founder +1.4)
            + 0.35 * (log(company_size) - 4)          (0 when the size is missing)
            + 0.045 * (engagement_score - 50)
            + 0.1 * min(website_visits, 15) + 0.35 * min(content_downloads, 6)
            + source   (referral +1.1, webinar +0.8, trade_show +0.3, website 0,
                        paid_search -0.2, cold_call -1.2)
            + industry (Technology +0.4, Finance +0.3, Manufacturing +0.15,
                        Healthcare 0, Retail -0.15, Other -0.25, Education -0.5)
            - 0.6 * exp(-lead_age_days / 45)          (recent leads had less time)
            + N(0, 0.5) noise

About 22% of the leads convert. Converted leads get ``status`` "customer" or "won",
the others "lost" or "disqualified" (interns and students are disqualified more often).
On the default 3000 leads, gradient boosting reaches a held-out ROC-AUC of about 0.85
(0.83-0.86 depending on the split) and logistic regression about 0.86; the rule-based
scorer in `leadml.ml.rules` reaches about 0.79 without training.

Customers: `generate_customers`
-------------------------------
Each customer has an industry, a company size (as for leads) and an email address
(about 20% free-mail). Hidden per customer:

- a purchase rate ``Gamma(shape 2, scale 3)`` orders a year (mean 6), a little higher for
  bigger companies (``x (company_size / 60) ** 0.1``);
- a typical order value ``LogNormal(log 220, 0.8)``, scaled the same way by company size
  and by 0.7 for free-mail (small-business) customers; each single order is that value
  times ``LogNormal(-0.045, 0.3)`` noise, whose mean is 1;
- a first purchase 90..1460 days before the reference date and an active span: the
  whole tenure for 60% of customers, a uniform part of it for the 40% who stopped
  buying at some point.

History: ``total_orders = 1 + Poisson(rate x active years)``, the extra orders placed
uniformly in the active span (the latest gives ``last_purchase_date``); ``total_spent``
sums the order values and ``avg_order_value = total_spent / total_orders``;
``support_tickets ~ Poisson(0.3 + 0.25 x sqrt(total_orders))``.

Target: ``lifetime_value`` is the spend over the 12 months after the reference date.
The customer is still alive with probability
``0.97 / (1 + exp((days_since_last_purchase - 240) / 30)) x exp(-0.08 x support_tickets)``
(near 1 for buyers within six months, near 0 beyond ten); an alive customer places
``Poisson(rate)`` orders valued as above, a lapsed one spends 0. The target is
therefore non-negative with about 45% zeros and a long right tail. On the default 2000
customers a random forest reaches a cross-validated R² of about 0.5 (0.49-0.55 across
seeds; a single 80/20 split lands anywhere in 0.4-0.6 because of the tail).

Past the ~400 lines of the README's module rule on purpose: two generators share one
generating process, documented here beside the code that draws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

REFERENCE_DATE = date(2026, 6, 30)
LEAD_HISTORY_DAYS = 730
CUSTOMER_MIN_TENURE_DAYS = 90
CUSTOMER_MAX_TENURE_DAYS = 1460
MAX_COMPANY_SIZE = 20000
MISSING_COMPANY_SIZE_SHARE = 0.05

FIRST_NAMES: tuple[str, ...] = (
    "anna", "ben", "carla", "david", "elena", "felix", "grace", "hugo", "irene", "jonas",
    "karen", "liam", "maria", "nina", "oscar", "paula", "quentin", "rosa", "samuel", "tara",
    "umar", "vera", "william", "xenia", "yusuf", "zoe", "ahmed", "beatriz", "chen", "dmitri",
    "emma", "farah", "george", "hana", "ivan", "julia", "kenji", "lucia", "mateo", "priya",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "smith", "mueller", "garcia", "rossi", "novak", "kim", "nguyen", "silva", "johnson", "brown",
    "schmidt", "martin", "dubois", "kowalski", "jensen", "tanaka", "patel", "cohen", "larsen", "fischer",
    "lopez", "moreau", "weber", "hansen", "ivanova", "okafor", "singh", "costa", "berg", "walsh",
)  # fmt: skip
FREE_MAIL_CHOICES: tuple[str, ...] = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com")
FREE_MAIL_WEIGHTS: tuple[float, ...] = (0.52, 0.14, 0.12, 0.14, 0.05, 0.03)

INDUSTRIES: tuple[str, ...] = ("Technology", "Finance", "Healthcare", "Retail", "Manufacturing", "Education", "Other")
INDUSTRY_WEIGHTS: tuple[float, ...] = (0.28, 0.14, 0.13, 0.14, 0.13, 0.08, 0.10)
INDUSTRY_LOGIT: dict[str, float] = {
    "Technology": 0.4,
    "Finance": 0.3,
    "Healthcare": 0.0,
    "Retail": -0.15,
    "Manufacturing": 0.15,
    "Education": -0.5,
    "Other": -0.25,
}
COMPANY_PREFIXES: tuple[str, ...] = (
    "Acme", "Blue Harbor", "Nova", "Vertex", "Northwind", "Summit", "Bright", "Ironclad", "Silver Oak",
    "Redwood", "Apex", "Cobalt", "Evergreen", "Lumen", "Orbit", "Pioneer", "Quantum", "Riverstone",
    "Sterling", "Trident", "Union", "Vantage", "Westfield", "Zenith", "Atlas", "Beacon", "Crescent",
    "Delta", "Falcon", "Granite",
)  # fmt: skip
COMPANY_SUFFIXES: dict[str, tuple[str, ...]] = {
    "Technology": ("Analytics", "Software", "Systems", "Labs", "Cloud", "Networks"),
    "Finance": ("Capital", "Financial", "Partners", "Investments", "Insurance"),
    "Healthcare": ("Health", "Medical", "Clinics", "Pharma", "Care"),
    "Retail": ("Retail", "Stores", "Outfitters", "Market", "Brands"),
    "Manufacturing": ("Manufacturing", "Industries", "Components", "Machines", "Plastics"),
    "Education": ("Academy", "Learning", "Institute", "Schools"),
    "Other": ("Group", "Services", "Consulting", "Logistics", "Media"),
}
DOMAIN_ENDINGS: tuple[str, ...] = (".com", ".io", ".co", ".net", ".de")
DOMAIN_ENDING_WEIGHTS: tuple[float, ...] = (0.70, 0.10, 0.08, 0.07, 0.05)


@dataclass(frozen=True)
class SeniorityTier:
    """A band of job titles and how holding one shapes a synthetic lead."""

    titles: tuple[str, ...]
    share: float  # how often a lead holds a title of this tier
    logit_effect: float  # added to the conversion logit
    free_mail_chance: float  # chance the contact writes from a free-mail address


SENIORITY_TIERS: tuple[SeniorityTier, ...] = (
    SeniorityTier(
        (
            "CEO",
            "Chief Technology Officer",
            "CFO",
            "Chief Marketing Officer",
            "Founder",
            "Co-founder",
            "Owner",
            "President",
        ),
        share=0.08,
        logit_effect=1.4,
        free_mail_chance=0.30,
    ),
    SeniorityTier(
        ("VP Sales", "VP Marketing", "Vice President of Engineering", "VP Operations"),
        share=0.07,
        logit_effect=1.2,
        free_mail_chance=0.25,
    ),
    SeniorityTier(
        (
            "Head of Marketing",
            "Head of Sales",
            "Director of IT",
            "Director of Operations",
            "Head of Growth",
            "Director of Finance",
        ),
        share=0.13,
        logit_effect=1.0,
        free_mail_chance=0.25,
    ),
    SeniorityTier(
        ("Senior Manager", "Marketing Manager", "Sales Manager", "Product Manager", "IT Manager", "Team Lead"),
        share=0.25,
        logit_effect=0.5,
        free_mail_chance=0.28,
    ),
    SeniorityTier(
        (
            "Sales Associate",
            "Analyst",
            "Software Engineer",
            "Account Executive",
            "Marketing Specialist",
            "Consultant",
            "Data Scientist",
            "Accountant",
        ),
        share=0.35,
        logit_effect=0.0,
        free_mail_chance=0.34,
    ),
    SeniorityTier(
        ("Intern", "Student", "Marketing Intern", "Trainee"),
        share=0.12,
        logit_effect=-1.6,
        free_mail_chance=0.78,
    ),
)

SOURCES: tuple[str, ...] = ("website", "referral", "webinar", "paid_search", "cold_call", "trade_show")
SOURCE_WEIGHTS: tuple[float, ...] = (0.32, 0.12, 0.12, 0.20, 0.14, 0.10)
SOURCE_LOGIT: dict[str, float] = {
    "website": 0.0,
    "referral": 1.1,
    "webinar": 0.8,
    "paid_search": -0.2,
    "cold_call": -1.2,
    "trade_show": 0.3,
}
# Webinar attendees and referred leads arrive already interested.
SOURCE_INTEREST_SHIFT: dict[str, float] = {
    "website": 0.0,
    "referral": 0.3,
    "webinar": 0.5,
    "paid_search": -0.1,
    "cold_call": -0.6,
    "trade_show": 0.1,
}
LEAD_INTERCEPT = -3.9
BUSINESS_EMAIL_LOGIT = 1.2


def generate_leads(n: int = 3000, *, seed: int = 7) -> pd.DataFrame:
    """Return `n` synthetic leads with a `status` target ("customer"/"won" = converted)."""
    rng = np.random.default_rng(seed)
    # The draws happen in this order, each step after the last: reordering them changes
    # every lead a seed gives.
    industries = rng.choice(INDUSTRIES, size=n, p=INDUSTRY_WEIGHTS)
    companies, company_domains = _company_names(rng, industries)
    company_sizes = _company_sizes(rng, n)
    contacts = _lead_contacts(rng, company_domains)
    activity = _lead_activity(rng, n)
    age_days = rng.integers(1, LEAD_HISTORY_DAYS + 1, n)
    created_at = [(REFERENCE_DATE - timedelta(days=int(days))).isoformat() for days in age_days]
    logit = _lead_logit(
        rng, contacts, activity, company_sizes=company_sizes, industries=industries, age_days=age_days
    )
    converted = rng.random(n) < _sigmoid(logit)
    # A CRM's own score sees title and engagement, not the outcome, and is noisy.
    lead_score = np.clip(
        np.round(35 + 12 * contacts.seniority_effect + 0.35 * (activity.engagement_score - 50) + rng.normal(0, 12, n)),
        0,
        100,
    ).astype(np.int64)
    status = _lead_status(rng, converted, contacts.tier_index)
    return pd.DataFrame(
        {
            "id": [f"lead-{index:06d}" for index in range(1, n + 1)],
            "email": contacts.emails,
            "job_title": contacts.job_titles,
            "company": companies,
            "company_size": company_sizes,
            "industry": industries.astype(object),
            "source": activity.sources.astype(object),
            "lead_score": lead_score,
            "engagement_score": activity.engagement_score,
            "email_interactions": activity.email_interactions,
            "website_visits": activity.website_visits,
            "content_downloads": activity.content_downloads,
            "created_at": created_at,
            "status": status.astype(object),
        }
    )


@dataclass(frozen=True)
class _LeadContacts:
    """Who a lead is: the seniority tier drawn, its title, its effect, and the address."""

    tier_index: np.ndarray
    job_titles: np.ndarray
    seniority_effect: np.ndarray
    uses_free_mail: np.ndarray
    emails: list[str]


@dataclass(frozen=True)
class _LeadActivity:
    """How a lead arrived and engaged: the source and what its latent interest drove."""

    sources: np.ndarray
    engagement_score: np.ndarray
    email_interactions: np.ndarray
    website_visits: np.ndarray
    content_downloads: np.ndarray


def _lead_contacts(rng: np.random.Generator, company_domains: list[str]) -> _LeadContacts:
    """Draw each lead's seniority tier, a title of it and an address: the tier sets how
    likely the contact writes from free mail, which is part of the conversion signal."""
    n = len(company_domains)
    tier_index = rng.choice(len(SENIORITY_TIERS), size=n, p=[tier.share for tier in SENIORITY_TIERS])
    job_titles = np.array(
        [_pick(SENIORITY_TIERS[tier].titles, draw) for tier, draw in zip(tier_index, rng.random(n), strict=True)],
        dtype=object,
    )
    seniority_effect = np.array([SENIORITY_TIERS[tier].logit_effect for tier in tier_index])
    free_mail_chance = np.array([SENIORITY_TIERS[tier].free_mail_chance for tier in tier_index])
    uses_free_mail = rng.random(n) < free_mail_chance
    emails = _emails(rng, company_domains, uses_free_mail)
    return _LeadContacts(tier_index, job_titles, seniority_effect, uses_free_mail, emails)


def _lead_activity(rng: np.random.Generator, n: int) -> _LeadActivity:
    """Draw each lead's source and a latent interest it shifts; the engagement columns grow
    with that interest, so they carry signal the model can learn without seeing it."""
    sources = rng.choice(SOURCES, size=n, p=SOURCE_WEIGHTS)
    interest = rng.normal(0.0, 1.0, n) + np.array([SOURCE_INTEREST_SHIFT[source] for source in sources])
    engagement_score = np.clip(np.round(50 + 17 * interest + rng.normal(0, 9, n)), 0, 100).astype(np.int64)
    email_interactions = rng.poisson(np.exp(0.8 + 0.45 * interest)).astype(np.int64)
    website_visits = rng.poisson(np.exp(1.2 + 0.5 * interest)).astype(np.int64)
    content_downloads = rng.poisson(np.exp(-0.4 + 0.6 * interest)).astype(np.int64)
    return _LeadActivity(sources, engagement_score, email_interactions, website_visits, content_downloads)


def _lead_logit(
    rng: np.random.Generator,
    contacts: _LeadContacts,
    activity: _LeadActivity,
    *,
    company_sizes: np.ndarray,
    industries: np.ndarray,
    age_days: np.ndarray,
) -> np.ndarray:
    """The conversion logit of the module docstring, term by term, plus its N(0, 0.5) noise."""
    n = len(industries)
    log_size_effect = np.where(np.isnan(company_sizes), 0.0, np.log(np.nan_to_num(company_sizes, nan=1.0)) - 4.0)
    logit: np.ndarray = (
        LEAD_INTERCEPT
        + BUSINESS_EMAIL_LOGIT * (~contacts.uses_free_mail)
        + contacts.seniority_effect
        + 0.35 * log_size_effect
        + 0.045 * (activity.engagement_score - 50)
        + 0.1 * np.minimum(activity.website_visits, 15)
        + 0.35 * np.minimum(activity.content_downloads, 6)
        + np.array([SOURCE_LOGIT[source] for source in activity.sources])
        + np.array([INDUSTRY_LOGIT[industry] for industry in industries])
        - 0.6 * np.exp(-age_days / 45.0)
        + rng.normal(0.0, 0.5, n)
    )
    return logit


def _lead_status(rng: np.random.Generator, converted: np.ndarray, tier_index: np.ndarray) -> np.ndarray:
    """The CRM status a lead ends in: "customer" or "won" when converted, else "lost" or
    "disqualified" (interns and students disqualified more often)."""
    n = len(converted)
    is_intern_or_student = tier_index == len(SENIORITY_TIERS) - 1
    disqualified_chance = np.where(is_intern_or_student, 0.6, 0.25)
    status: np.ndarray = np.where(
        converted,
        np.where(rng.random(n) < 0.6, "customer", "won"),
        np.where(rng.random(n) < disqualified_chance, "disqualified", "lost"),
    )
    return status


def generate_customers(n: int = 2000, *, seed: int = 11) -> pd.DataFrame:
    """Return `n` synthetic customers with a 12-month `lifetime_value` target."""
    rng = np.random.default_rng(seed)
    # The draws happen in this order, each step after the last: reordering them changes
    # every customer a seed gives.
    industries = rng.choice(INDUSTRIES, size=n, p=INDUSTRY_WEIGHTS)
    _, company_domains = _company_names(rng, industries)
    company_sizes = _company_sizes(rng, n)
    # Missing sizes count as a typical company for the hidden process, not as size 1.
    size_for_process = np.nan_to_num(company_sizes, nan=60.0)
    size_factor = (size_for_process / 60.0) ** 0.1
    uses_free_mail = rng.random(n) < 0.2
    emails = _emails(rng, company_domains, uses_free_mail)

    orders_per_year = rng.gamma(shape=2.0, scale=3.0, size=n) * size_factor
    typical_order_value = np.exp(rng.normal(np.log(220.0), 0.8, n)) * size_factor * np.where(uses_free_mail, 0.7, 1.0)
    history = _customer_history(rng, orders_per_year)
    total_spent = np.round(_orders_spend(rng, typical_order_value, history.total_orders), 2)
    avg_order_value = np.round(total_spent / history.total_orders, 2)
    support_tickets = rng.poisson(0.3 + 0.25 * np.sqrt(history.total_orders)).astype(np.int64)
    future_spend = _customer_future_spend(
        rng,
        orders_per_year=orders_per_year,
        typical_order_value=typical_order_value,
        days_since_last_purchase=history.days_since_last_purchase,
        support_tickets=support_tickets,
    )

    first_purchase = [REFERENCE_DATE - timedelta(days=int(days)) for days in history.tenure_days]
    last_purchase = [
        first + timedelta(days=int(days))
        for first, days in zip(first_purchase, history.days_first_to_last, strict=True)
    ]
    return pd.DataFrame(
        {
            "customer_id": [f"cust-{index:05d}" for index in range(1, n + 1)],
            "industry": industries.astype(object),
            "company_size": company_sizes,
            "total_orders": history.total_orders,
            "total_spent": total_spent,
            "avg_order_value": avg_order_value,
            "first_purchase_date": [day.isoformat() for day in first_purchase],
            "last_purchase_date": [day.isoformat() for day in last_purchase],
            "support_tickets": support_tickets,
            "email": emails,
            "lifetime_value": np.round(future_spend, 2),
        }
    )


# The spread of one order's value around the customer's typical one (log scale).
ORDER_NOISE_SIGMA = 0.3


@dataclass(frozen=True)
class _CustomerHistory:
    """A customer's past purchases as days: tenure, orders, and how long since the last."""

    tenure_days: np.ndarray
    total_orders: np.ndarray
    days_first_to_last: np.ndarray
    days_since_last_purchase: np.ndarray


def _customer_history(rng: np.random.Generator, orders_per_year: np.ndarray) -> _CustomerHistory:
    """Draw each customer's tenure and active span and the orders placed in it; the recency
    of the last order is what decides, later, whether the customer is still alive."""
    n = len(orders_per_year)
    tenure_days = rng.integers(CUSTOMER_MIN_TENURE_DAYS, CUSTOMER_MAX_TENURE_DAYS + 1, n)
    # Roughly 40% stopped buying at some point; the rest were active all along.
    stopped_early = rng.random(n) < 0.4
    active_days = np.where(stopped_early, tenure_days * rng.random(n), tenure_days).astype(float)
    extra_orders = rng.poisson(orders_per_year * active_days / 365.0)
    total_orders = (1 + extra_orders).astype(np.int64)
    # The last of `extra_orders` uniform times in the active span: the maximum of k
    # uniforms is U ** (1 / k).
    last_order_share = np.where(extra_orders > 0, rng.random(n) ** (1.0 / np.maximum(extra_orders, 1)), 0.0)
    days_first_to_last = np.floor(active_days * last_order_share).astype(np.int64)
    return _CustomerHistory(tenure_days, total_orders, days_first_to_last, tenure_days - days_first_to_last)


def _orders_spend(rng: np.random.Generator, typical_order_value: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Each customer's spend on `orders` orders, every one its typical value times noise of
    mean 1 (the past and the future are drawn alike, so the history predicts the target)."""
    return np.array(
        [
            float(np.sum(value * rng.lognormal(-(ORDER_NOISE_SIGMA**2) / 2, ORDER_NOISE_SIGMA, count)))
            for value, count in zip(typical_order_value, orders, strict=True)
        ]
    )


def _customer_future_spend(
    rng: np.random.Generator,
    *,
    orders_per_year: np.ndarray,
    typical_order_value: np.ndarray,
    days_since_last_purchase: np.ndarray,
    support_tickets: np.ndarray,
) -> np.ndarray:
    """The target: spend over the next 12 months, 0 for a customer who lapsed (recent buyers
    with few tickets are likely alive) and a year of orders at the usual rate otherwise."""
    n = len(orders_per_year)
    alive_probability = (
        0.97 / (1.0 + np.exp((days_since_last_purchase - 240.0) / 30.0)) * np.exp(-0.08 * support_tickets)
    )
    alive = rng.random(n) < alive_probability
    future_orders = np.where(alive, rng.poisson(orders_per_year), 0)
    return _orders_spend(rng, typical_order_value, future_orders)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    probabilities: np.ndarray = 1.0 / (1.0 + np.exp(-values))
    return probabilities


def _company_sizes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw log-normal employee counts in 1..20000, with about 5% missing (NaN)."""
    sizes = np.clip(np.round(np.exp(rng.normal(4.1, 1.7, n))), 1, MAX_COMPANY_SIZE)
    missing = rng.random(n) < MISSING_COMPANY_SIZE_SHARE
    return np.where(missing, np.nan, sizes).astype(np.float64)


def _company_names(rng: np.random.Generator, industries: np.ndarray) -> tuple[list[str], list[str]]:
    """Return a company name and its web domain per row, the suffix fitting the industry."""
    prefixes = rng.choice(COMPANY_PREFIXES, size=len(industries))
    suffix_positions = rng.random(len(industries))
    endings = rng.choice(DOMAIN_ENDINGS, size=len(industries), p=DOMAIN_ENDING_WEIGHTS)
    names: list[str] = []
    domains: list[str] = []
    for prefix, industry, position, ending in zip(prefixes, industries, suffix_positions, endings, strict=True):
        suffix = _pick(COMPANY_SUFFIXES[str(industry)], position)
        names.append(f"{prefix} {suffix}")
        domains.append(f"{prefix}-{suffix}".lower().replace(" ", "") + str(ending))
    return names, domains


def _pick(options: tuple[str, ...], uniform_draw: float) -> str:
    """Return the option a uniform [0, 1) draw falls on, all options equally likely."""
    return options[int(uniform_draw * len(options))]


def _emails(rng: np.random.Generator, company_domains: list[str], uses_free_mail: np.ndarray) -> list[str]:
    """Return first.last@domain addresses: company domain, or a free-mail one with a number."""
    first_names = rng.choice(FIRST_NAMES, size=len(company_domains))
    last_names = rng.choice(LAST_NAMES, size=len(company_domains))
    free_domains = rng.choice(FREE_MAIL_CHOICES, size=len(company_domains), p=FREE_MAIL_WEIGHTS)
    # Free-mail addresses usually carry a number because the plain name is taken.
    numbers = rng.integers(1, 100, size=len(company_domains))
    emails: list[str] = []
    for index, domain in enumerate(company_domains):
        local = f"{first_names[index]}.{last_names[index]}"
        if uses_free_mail[index]:
            emails.append(f"{local}{numbers[index]}@{free_domains[index]}")
        else:
            emails.append(f"{local}@{domain}")
    return emails


def main(argv: list[str] | None = None) -> None:
    """Write demo data as CSV to stdout: `python -m demo.data leads|customers [N]`."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Write synthetic leads or customers as CSV.")
    parser.add_argument("kind", choices=("leads", "customers"))
    parser.add_argument("rows", type=int, nargs="?", default=1000)
    parser.add_argument("--seed", type=int, default=None)
    options = parser.parse_args(argv)
    generate = generate_leads if options.kind == "leads" else generate_customers
    frame = generate(options.rows) if options.seed is None else generate(options.rows, seed=options.seed)
    frame.to_csv(sys.stdout, index=False)


if __name__ == "__main__":
    main()

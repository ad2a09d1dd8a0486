"""The CRM field vocabulary: e-mail domains, free-mail providers and job-title seniority."""

from __future__ import annotations

import subprocess
import sys

import pytest

from leadml.ml.vocabulary import FREE_MAIL_DOMAINS, email_domain, is_free_mail, seniority_level


@pytest.mark.parametrize(
    ("job_title", "level"),
    [
        ("CEO", 6),
        ("cto", 6),
        ("Chief Revenue Officer", 6),
        ("Co-founder & CEO", 6),
        ("Cofounder", 6),
        ("Owner", 6),
        ("President", 6),
        ("Managing Director", 6),
        ("VP Sales", 5),
        ("V.P. of Marketing", 5),
        ("Senior Vice President, Sales", 5),
        ("Vice-President Engineering", 5),
        ("Head of Marketing", 4),
        ("Director of IT", 4),
        ("Associate Director", 3),
        ("Senior Manager", 3),
        ("Marketing Manager", 3),
        ("Team Lead", 3),
        ("Sr. Developer", 3),
        ("Sales Associate", 2),
        ("Analyst", 2),
        ("Software Engineer", 2),
        ("Product Owner", 2),
        ("Assistant to the CEO", 2),
        ("Lead Generation Specialist", 2),
        ("Internal Auditor", 2),
        ("Intern", 1),
        ("Student", 1),
        ("Graduate Trainee", 1),
    ],
)
def test_seniority_level_reads_job_titles(job_title: str, level: int) -> None:
    assert seniority_level(job_title) == level


@pytest.mark.parametrize("job_title", [None, "", "   ", "n/a", "N/A", "unknown", "-", "???", 42, float("nan"), ["CEO"]])
def test_seniority_level_is_zero_for_missing_or_placeholder_titles(job_title: object) -> None:
    assert seniority_level(job_title) == 0


def test_email_domain_returns_lowercased_domain_or_none() -> None:
    assert email_domain("  Jane.Doe@ACME.Com ") == "acme.com"
    assert email_domain("a@mail.example.co.uk") == "mail.example.co.uk"
    for not_an_email in (None, "", "jane", "jane@", "@acme.com", "jane@localhost", "a b@acme.com", 12, b"x@y.com"):
        assert email_domain(not_an_email) is None, not_an_email


def test_free_mail_covers_major_providers_and_their_country_domains() -> None:
    assert len(FREE_MAIL_DOMAINS) >= 30
    for domain in ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com", "icloud.com", "mail.ru"):
        assert is_free_mail(domain), domain
    for domain in ("yahoo.co.uk", "hotmail.fr", "gmx.at", "yandex.kz", "protonmail.ch", "proton.me", "GMAIL.COM"):
        assert is_free_mail(domain), domain
    business_or_missing: tuple[str | None, ...] = ("acme.com", "yahoo-analytics.com", "gmail.example.com", "", None)
    for not_free_mail in business_or_missing:
        assert not is_free_mail(not_free_mail), not_free_mail


def test_vocabulary_does_not_import_django() -> None:
    code = "import sys, leadml.ml.vocabulary; assert 'django' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

"""The CRM field vocabulary: what e-mail addresses and job titles say about a lead.

`email_domain`, `is_free_mail` and `seniority_level` read the raw fields the same way
everywhere: in the engineered features (features.py, and fastpath.py for a few records),
in the per-record reasons (reasons.py) and in the rule-based fallback scorer (rules.py).
The word lists behind them (free-mail domains and providers, placeholder texts, the
seniority patterns) live here once.
"""

from __future__ import annotations

import re

# Column names read as a job title, by column inference and by the fallback scorer.
JOB_TITLE_FIELDS: tuple[str, ...] = ("job_title", "title", "jobtitle", "position", "role")

# The seniority scale of `seniority_level` (0 is unknown or missing).
SENIORITY_LABELS: dict[int, str] = {
    6: "C-level, founder or owner",
    5: "vice president",
    4: "director or head",
    3: "manager or senior",
    2: "individual contributor",
    1: "intern or student",
}

FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "ymail.com",
        "rocketmail.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "msn.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "gmx.com",
        "gmx.net",
        "gmx.de",
        "web.de",
        "t-online.de",
        "freenet.de",
        "mail.com",
        "mail.ru",
        "inbox.ru",
        "list.ru",
        "bk.ru",
        "yandex.com",
        "yandex.ru",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "tutanota.com",
        "zoho.com",
        "fastmail.com",
        "hey.com",
        "qq.com",
        "163.com",
        "126.com",
        "naver.com",
        "orange.fr",
        "free.fr",
        "laposte.net",
        "libero.it",
        "seznam.cz",
        "wp.pl",
        "o2.pl",
        "rediffmail.com",
        "comcast.net",
        "verizon.net",
        "att.net",
    }
)
# Providers that serve the same free mailbox under many country domains
# (yahoo.co.uk, hotmail.fr, gmx.at, yandex.kz, protonmail.ch, ...).
FREE_MAIL_PROVIDERS: frozenset[str] = frozenset(
    {"gmail", "googlemail", "yahoo", "hotmail", "outlook", "live", "aol", "gmx", "yandex", "protonmail"}
)

EMAIL_PATTERN = re.compile(r"^[^@\s<>]+@([a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+)$")
COUNTRY_SUFFIX_LABEL = re.compile(r"^[a-z]{2,3}$")

PLACEHOLDER_TEXTS = frozenset(
    {"", "n/a", "na", "none", "null", "nil", "nan", "unknown", "-", "--", "?", "tbd", "not available"}
)

# Titles that name a senior person but belong to someone else ("Assistant to the CEO")
# or use an executive word in another sense ("Product Owner").
SUPPORT_ROLE_TITLE = re.compile(r"\b(?:executive|personal|administrative)\s+assistant\b|\bassistant\s+to\b")
NON_EXECUTIVE_OWNER = re.compile(r"\b(?:product|process|data|system|business\s+process|asset|account)\s+owner\b")
VICE_PRESIDENT = re.compile(r"\bvice[\s-]+president\b")
# Checked from the most senior level down; the first level with a match wins.
SENIORITY_PATTERNS: tuple[tuple[int, re.Pattern[str]], ...] = (
    (
        6,
        re.compile(
            r"\b(?:ceo|cto|cfo|coo|cmo|cio|ciso|cro|cpo|cso|cdo|cco|chro|cxo|caio)\b"
            r"|\bchief\b.*\bofficer\b|\bchief\s+executive\b"
            r"|\b(?:co[\s-]?)?founder\b|\b(?:co[\s-]?)?owner\b|\bproprietor\b"
            r"|\bpresident\b|\bmanaging\s+director\b|\bchair(?:man|woman|person)?\b"
        ),
    ),
    (5, re.compile(r"\b(?:[se]?vp|vice_president)\b")),
    (4, re.compile(r"\bdirector\b|\bhead\b|\bchief\b|\bgeneral\s+manager\b|\bavp\b")),
    (
        3,
        re.compile(
            r"\bmanager\b|\bmgr\b|\bsenior\b|\bsr\b|\blead\b(?!\s+gen)|\bteam\s*leader\b"
            r"|\bsupervisor\b|\bprincipal\b"
        ),
    ),
    (1, re.compile(r"\bintern(?:ship)?\b|\bstudent\b|\btrainee\b|\bapprentice\b")),
)
# "Associate Director", "Deputy Head", "Assistant Manager": one level below the role named.
JUNIOR_MODIFIER = re.compile(
    r"\b(?:assistant|associate|deputy|asst)[\s-]+(?:vice_president|vp|director|head|manager|general\s+manager)\b"
)


def email_domain(email: object) -> str | None:
    """Return the lowercased domain of an email address, or None if it is not one."""
    if not isinstance(email, str):
        return None
    match = EMAIL_PATTERN.match(email.strip().lower().rstrip("."))
    return match.group(1) if match else None


def is_free_mail(domain: str | None) -> bool:
    """Tell whether a domain belongs to a free consumer mailbox provider."""
    if not domain:
        return False
    domain = domain.strip().lower()
    if domain in FREE_MAIL_DOMAINS:
        return True
    provider, _, suffix = domain.partition(".")
    suffix_labels = suffix.split(".")
    return (
        provider in FREE_MAIL_PROVIDERS
        and 1 <= len(suffix_labels) <= 2
        and all(COUNTRY_SUFFIX_LABEL.match(label) for label in suffix_labels)
    )


def seniority_level(job_title: object) -> int:
    """Return the seniority of a job title on a 0..6 scale.

    0 unknown or missing, 1 intern/student/trainee, 2 individual contributor (any other
    real title), 3 manager/senior/lead, 4 director/head, 5 vice president,
    6 C-level/founder/owner/president.
    """
    if not isinstance(job_title, str):
        return 0
    # Dots go so that "V.P." and "Sr." read as "vp" and "sr".
    text = " ".join(job_title.lower().replace(".", "").split())
    if text in PLACEHOLDER_TEXTS or not re.search(r"[a-z]", text):
        return 0
    if SUPPORT_ROLE_TITLE.search(text):
        return 2
    text = NON_EXECUTIVE_OWNER.sub("specialist", text)
    # Written as one token so the level-6 "president" pattern cannot match a VP.
    text = VICE_PRESIDENT.sub("vice_president", text)
    for level, pattern in SENIORITY_PATTERNS:
        if pattern.search(text):
            if level >= 3 and JUNIOR_MODIFIER.search(text):
                return max(level - 1, 2)
            return level
    return 2

"""PostgreSQL URLs of data sources: checked, masked for display, and scrubbed from messages.

Plain Python (no Django): the model, the reader, the admin and the logs all show a URL
the same way, `postgres://user:***@host:5432/db` (README, "Training from the CRM's database").
"""
from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

SCHEMES = ("postgres", "postgresql")
MASK = "***"


def url_problem(url: str) -> str | None:
    """Why `url` is not a PostgreSQL URL leadml can use, or None."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as error:
        return f"not a URL ({error})"
    if parts.scheme not in SCHEMES:
        return "must be a postgres:// or postgresql:// URL"
    if not parts.hostname:
        return "must name a host"
    if not parts.path.strip("/"):
        return "must name a database (postgres://user:password@host:5432/dbname)"
    return None


def url_masked(url: str) -> str:
    """The URL with its password replaced by ***; query options (which may hold one) dropped."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port else "")
    if parts.username:
        user = parts.username + (f":{MASK}" if parts.password is not None else "")
        netloc = f"{user}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def secrets_redact(text: str, url: str) -> str:
    """`text` (an error message) with the URL and its password, if they appear, masked."""
    if not text:
        return text
    text = text.replace(url, url_masked(url))
    try:
        password = urlsplit(url.strip()).password
    except ValueError:
        password = None
    for secret in {password, unquote(password) if password else None}:
        if secret:
            text = text.replace(secret, MASK)
    return text

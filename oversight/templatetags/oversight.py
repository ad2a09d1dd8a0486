"""Template tags of the admin console."""
from __future__ import annotations

from typing import Any

from django import template

from oversight.dashboard import dashboard_rows

register = template.Library()


@register.inclusion_tag("oversight/dashboard.html")
def leadml_dashboard() -> dict[str, Any]:
    return {"rows": dashboard_rows()}


@register.inclusion_tag("oversight/progress.html")
def leadml_progress(job: Any) -> dict[str, Any]:
    return {"job": job}

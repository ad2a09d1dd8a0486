"""Object lookups for the console's own admin views."""
from __future__ import annotations

from typing import TypeVar

from django.core.exceptions import ValidationError
from django.db.models import Model
from django.http import Http404

M = TypeVar("M", bound=Model)


def object_or_404(model: type[M], object_id: str) -> M:
    """The object, or a 404 for an unknown id and for one that is not an id at all ("abc")."""
    try:
        found = model._default_manager.filter(pk=object_id).first()
    except (ValueError, ValidationError):
        found = None
    if found is None:
        raise Http404(f"no {model._meta.verbose_name} {object_id!r}")
    return found

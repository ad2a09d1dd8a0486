"""Reads from the model registry."""
from __future__ import annotations

from django.db.models import QuerySet

from leadml.errors import ConflictError, NotFoundError
from registry.models import ModelVersion, PromotionEvent


def model_version_get_active(*, tenant: str, model_type: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(tenant=tenant, model_type=model_type, status=ModelVersion.Status.ACTIVE).first()


def model_version_get_for_name(*, tenant: str, name: str, model_type: str | None = None) -> ModelVersion:
    """Return the version a request naming `model_name` gets: the active one, else the newest usable."""
    versions = ModelVersion.objects.filter(tenant=tenant, name=name)
    if model_type is not None:
        versions = versions.filter(model_type=model_type)
    chosen = versions.filter(status=ModelVersion.Status.ACTIVE).first() or (
        versions.exclude(status=ModelVersion.Status.BROKEN).order_by("-version").first()
    )
    if chosen is None:
        raise NotFoundError(f"no usable model named '{name}' for this user_id" + (f" and {model_type}" if model_type else ""))
    return chosen


def model_version_list(*, tenant: str) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(tenant=tenant).order_by("model_type", "name", "-version")


def model_versions_for_name(*, tenant: str, name: str) -> list[ModelVersion]:
    versions = list(ModelVersion.objects.filter(tenant=tenant, name=name).order_by("-version"))
    if not versions:
        raise NotFoundError(f"no model named '{name}' for this user_id")
    return versions


def promotion_history(*, tenant: str, model_type: str) -> QuerySet[PromotionEvent]:
    return PromotionEvent.objects.filter(tenant=tenant, model_type=model_type).select_related(
        "from_version", "to_version"
    )


def model_name_check_type(*, tenant: str, name: str, model_type: str) -> None:
    """Refuse (409) a model name the tenant already uses for the other model type."""
    other = ModelVersion.objects.filter(tenant=tenant, name=name).exclude(model_type=model_type).first()
    if other is not None:
        raise ConflictError(
            f"model_name '{name}' already names a {other.model_type} model; choose another name",
            details={"model_name": ["used by another model type"]},
        )

"""Reads from the model registry."""
from __future__ import annotations

from collections.abc import Sequence

from django.db.models import QuerySet

from leadml.api.errors import ApplicationError, ConflictError, NotFoundError
from registry.models import ModelVersion, PromotionEvent


def model_version_get_active(*, tenant: str, model_type: str, deferred: Sequence[str] = ()) -> ModelVersion | None:
    return (
        ModelVersion.objects.defer(*deferred)
        .filter(tenant=tenant, model_type=model_type, status=ModelVersion.Status.ACTIVE)
        .first()
    )


def model_version_get_named(
    *, tenant: str, name: str, model_type: str | None = None, version: int | None = None, deferred: Sequence[str] = ()
) -> ModelVersion:
    """Return the version a request naming `model_name` (and maybe `version`) gets.

    That exact version when `version` is given; otherwise the model's newest version
    that can serve (not broken, not archived), whether or not it is the active one: a
    caller naming a model asks for that model, even when a newer version did not beat
    the active one (README "Choosing the model").
    """
    versions = ModelVersion.objects.defer(*deferred).filter(tenant=tenant, name=name)
    if model_type is not None:
        versions = versions.filter(model_type=model_type)
    where = f"for this user_id and {model_type}" if model_type else "for this user_id"
    if version is not None:
        chosen = versions.filter(version=version).first()
        if chosen is None:
            raise NotFoundError(f"model '{name}' has no version {version} {where}")
        return chosen
    chosen = (
        versions.exclude(status__in=[ModelVersion.Status.BROKEN, ModelVersion.Status.ARCHIVED])
        .order_by("-version")
        .first()
    )
    if chosen is None:
        raise NotFoundError(f"no usable model named '{name}' {where}")
    return chosen


def model_version_select(
    *,
    tenant: str,
    model_type: str,
    model_name: str | None = None,
    version: int | None = None,
    deferred: Sequence[str] = (),
) -> ModelVersion | None:
    """The version a scoring or monitoring request means: named (and numbered), else the active one.

    `deferred` fields are left unread until accessed (the scoring path needs none of the
    large JSON ones).
    """
    if model_name:
        return model_version_get_named(
            tenant=tenant, name=model_name, model_type=model_type, version=version, deferred=deferred
        )
    if version is not None:
        raise ApplicationError("version needs model_name", details={"version": ["given without model_name"]})
    return model_version_get_active(tenant=tenant, model_type=model_type, deferred=deferred)


def model_version_list(*, tenant: str) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(tenant=tenant).order_by("model_type", "name", "-version")


def model_version_list_named(*, tenant: str, name: str, version: int | None = None) -> list[ModelVersion]:
    """A model's versions, newest first; only version `version` when it is given (404 when none).

    The one lookup of "this model, maybe this version" for the model endpoints (delete,
    activate, retrain); scoring and monitoring use `model_version_select`.
    """
    versions = list(ModelVersion.objects.filter(tenant=tenant, name=name).order_by("-version"))
    if not versions:
        raise NotFoundError(f"no model named '{name}' for this user_id")
    if version is None:
        return versions
    numbered = [candidate for candidate in versions if candidate.version == version]
    if not numbered:
        raise NotFoundError(f"model '{name}' has no version {version}")
    return numbered


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

"""Writes to the model registry: tokens, versions, activation, deletion."""
from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from leadml.api.errors import ApplicationError, ConflictError
from registry import artifacts
from registry.tokens import hash_key
from registry.cache import serving_cache_forget
from registry.models import ApiToken, ModelVersion, PromotionEvent, RegistryState
from registry.selectors import model_name_check_type
from registry.signals import version_promoted

logger = logging.getLogger(__name__)


def registry_changed() -> None:
    """Move the registry's generation: every process forgets the tokens and versions it kept.

    Called inside the transaction of the change, so the counter moves exactly when the
    change becomes visible (registry.cache).
    """
    if not RegistryState.objects.filter(pk=1).update(generation=F("generation") + 1):
        RegistryState.objects.get_or_create(pk=1, defaults={"generation": 1})
    # This process forgets at once, and again at commit (another thread may have read
    # the old state in between); the others at their next request.
    serving_cache_forget()
    transaction.on_commit(serving_cache_forget)


def api_token_create(*, name: str, tenant: str | None = None, is_service: bool = False) -> tuple[ApiToken, str]:
    """Create a token and return it with its key; the key is not stored and cannot be shown again."""
    if is_service == bool(tenant):
        raise ApplicationError("A token is either scoped to one tenant (user_id) or a service token, not both.")
    if tenant and tenant != tenant.strip():
        # Request bodies' user_id are read without surrounding spaces: such a token could act for no one.
        raise ApplicationError(
            f"user_id {tenant!r} starts or ends with spaces; tenant ids never do", details={"user_id": ["spaces"]}
        )
    key = "lml_" + secrets.token_urlsafe(32)
    token = ApiToken(name=name, tenant=tenant or "", is_service=is_service, key_prefix=key[:10], key_hash=hash_key(key))
    token.full_clean()
    token.save()
    return token, key


@transaction.atomic
def api_token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    registry_changed()


@transaction.atomic
def api_tokens_delete(*, tokens: list[ApiToken]) -> int:
    deleted, _ = ApiToken.objects.filter(pk__in=[token.pk for token in tokens]).delete()
    registry_changed()
    return deleted


def model_version_register(
    *,
    tenant: str,
    model_type: str,
    name: str,
    algorithm: str,
    artifact_bytes: bytes,
    artifact_sha256: str,
    fields: dict[str, Any],
    actor: str,
    promote_reason: str | None = None,
    promote_over: int | None = None,
    on_registered: Callable[[ModelVersion], None] | None = None,
    on_artifact_path: Callable[[str], None] | None = None,
) -> ModelVersion:
    """Store the artifact, then register a new version in one transaction.

    The tenant's first version for a model type becomes active, and so does any version
    registered with a `promote_reason` (it beat the active one, `promote_over`: if another
    version became active since the comparison, the new one stays a candidate). `on_registered` runs in
    the same transaction (the training job marks itself succeeded there), so a job never
    succeeds without its version nor a version appears without its job. If anything
    fails, the artifact file is removed again: no orphan files, no half-registered model.
    A process killed on the way cannot remove anything, so `on_artifact_path` learns the
    path before the file is written (the training job records it for whoever takes the
    job over) and again if the storage had to pick another name.
    """
    wanted, path = _artifact_store(
        tenant=tenant, model_type=model_type, name=name, artifact_bytes=artifact_bytes,
        artifact_sha256=artifact_sha256, on_artifact_path=on_artifact_path,
    )
    try:
        if path != wanted and on_artifact_path is not None:
            on_artifact_path(path)  # the name was taken in between: record the one written
        with transaction.atomic():
            model_version = _model_version_create(
                tenant=tenant,
                model_type=model_type,
                name=name,
                algorithm=algorithm,
                path=path,
                artifact_bytes=artifact_bytes,
                artifact_sha256=artifact_sha256,
                fields=fields,
            )
            _new_version_promote(
                model_version=model_version, actor=actor, promote_reason=promote_reason, promote_over=promote_over
            )
            if on_registered is not None:
                on_registered(model_version)
            registry_changed()  # a new newest version of its name
    except BaseException:
        artifacts.artifact_delete(path)
        raise
    logger.info(
        "model_version_registered tenant=%s name=%s version=%s algorithm=%s status=%s",
        tenant, name, model_version.version, algorithm, model_version.status,
    )
    return model_version


def _artifact_store(
    *,
    tenant: str,
    model_type: str,
    name: str,
    artifact_bytes: bytes,
    artifact_sha256: str,
    on_artifact_path: Callable[[str], None] | None,
) -> tuple[str, str]:
    """Write the artifact file; return the path wanted and the one written.

    `on_artifact_path` learns the wanted path before the file exists, so a process killed
    while writing leaves a path whoever takes over can remove; the two differ when the
    storage had to pick another name, which the caller records in turn.
    """
    wanted = artifacts.artifact_path_for(tenant=tenant, model_type=model_type, name=name, sha256=artifact_sha256)
    if on_artifact_path is not None:
        on_artifact_path(wanted)
    path = artifacts.artifact_save(
        tenant=tenant, model_type=model_type, name=name, sha256=artifact_sha256, data=artifact_bytes, path=wanted
    )
    return wanted, path


def _new_version_promote(
    *, model_version: ModelVersion, actor: str, promote_reason: str | None, promote_over: int | None
) -> None:
    """Activate a just-registered version when it is its type's first, or when it beat the
    version still active (`promote_over`: if another became active since the comparison,
    the new one stays a candidate). Runs in the registration's transaction, the active row
    locked.
    """
    active = (
        ModelVersion.objects.select_for_update()
        .filter(tenant=model_version.tenant, model_type=model_version.model_type, status=ModelVersion.Status.ACTIVE)
        .first()
    )
    if active is None:
        model_version_activate(model_version=model_version, actor=actor, reason="first model of this type")
    elif promote_reason and active.pk == promote_over:
        model_version_activate(model_version=model_version, actor=actor, reason=promote_reason)


def model_artifact_discard(*, path: str) -> bool:
    """Remove an artifact file that no version was registered with (a lost run's); True if removed.

    Only for a file whose writer can no longer register it (its training job was taken
    over): a version registered with the path keeps its file.
    """
    if not path or ModelVersion.objects.filter(artifact_path=path).exists():
        return False
    artifacts.artifact_delete(path)
    logger.info("model_artifact_discarded path=%s", path)
    return True


def _model_version_create(
    *,
    tenant: str,
    model_type: str,
    name: str,
    algorithm: str,
    path: str,
    artifact_bytes: bytes,
    artifact_sha256: str,
    fields: dict[str, Any],
) -> ModelVersion:
    model_name_check_type(tenant=tenant, name=name, model_type=model_type)
    latest = ModelVersion.objects.filter(tenant=tenant, name=name).aggregate(latest=Max("version"))["latest"]
    model_version = ModelVersion(
        tenant=tenant,
        model_type=model_type,
        name=name,
        version=(latest or 0) + 1,
        algorithm=algorithm,
        artifact_path=path,
        artifact_sha256=artifact_sha256,
        artifact_size=len(artifact_bytes),
        status=ModelVersion.Status.CANDIDATE,
        **fields,
    )
    model_version.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            model_version.save()
    except IntegrityError as error:
        # Only a concurrent registration taking the same version number is a conflict; any
        # other constraint (a JSON column's check, say) is a bug to see as it is.
        if ModelVersion.objects.filter(tenant=tenant, name=name, version=model_version.version).exists():
            raise ConflictError(f"a version of '{name}' was registered concurrently; retry") from error
        raise
    return model_version


@transaction.atomic
def model_version_activate(*, model_version: ModelVersion, actor: str, reason: str) -> PromotionEvent:
    """Make `model_version` the tenant's active model for its type, recording who and why."""
    if model_version.status == ModelVersion.Status.BROKEN:
        raise ApplicationError(
            f"version {model_version.version} is broken ({model_version.broken_reason}); it cannot be activated"
        )
    current = (
        ModelVersion.objects.select_for_update()
        .filter(tenant=model_version.tenant, model_type=model_version.model_type, status=ModelVersion.Status.ACTIVE)
        .first()
    )
    if current is not None and current.pk == model_version.pk:
        raise ConflictError(
            f"version {model_version.version} of '{model_version.name}' is already active",
            details={"version": ["already active"]},
        )
    if current is not None:
        ModelVersion.objects.filter(pk=current.pk).update(status=ModelVersion.Status.CANDIDATE)
    ModelVersion.objects.filter(pk=model_version.pk).update(status=ModelVersion.Status.ACTIVE)
    model_version.status = ModelVersion.Status.ACTIVE
    registry_changed()
    event = PromotionEvent.objects.create(
        tenant=model_version.tenant,
        model_type=model_version.model_type,
        from_version=current,
        to_version=model_version,
        actor=actor,
        reason=reason,
    )
    version_promoted.send(sender=PromotionEvent, event=event)
    return event


def model_version_mark_broken(*, model_version: ModelVersion, reason: str) -> None:
    logger.error(
        "model_version_broken id=%s tenant=%s name=%s version=%s reason=%s",
        model_version.pk,
        model_version.tenant,
        model_version.name,
        model_version.version,
        reason,
    )
    with transaction.atomic():
        ModelVersion.objects.filter(pk=model_version.pk).update(status=ModelVersion.Status.BROKEN, broken_reason=reason)
        registry_changed()


def model_version_archive(*, model_version: ModelVersion, actor: str, reason: str) -> None:
    """Retire a version (kept, listed, not served); the active one must be replaced first."""
    if model_version.status == ModelVersion.Status.ACTIVE:
        raise ConflictError(
            f"version {model_version.version} of '{model_version.name}' is active; activate another version first"
        )
    with transaction.atomic():
        ModelVersion.objects.filter(pk=model_version.pk).update(status=ModelVersion.Status.ARCHIVED)
        registry_changed()
    model_version.status = ModelVersion.Status.ARCHIVED
    logger.info(
        "model_version_archived id=%s tenant=%s name=%s version=%s actor=%s reason=%s",
        model_version.pk, model_version.tenant, model_version.name, model_version.version, actor, reason,
    )


def model_versions_delete(*, versions: list[ModelVersion], force: bool = False) -> int:
    """Delete versions and their artifacts; the active one only with `force`."""
    active = [version for version in versions if version.status == ModelVersion.Status.ACTIVE]
    if active and not force:
        raise ConflictError(
            f"version {active[0].version} of '{active[0].name}' is the active {active[0].model_type} model; "
            "activate another version first or pass force=true",
            details={"force": ["required to delete the active model"]},
        )
    paths = [version.artifact_path for version in versions]
    with transaction.atomic():
        ModelVersion.objects.filter(pk__in=[version.pk for version in versions]).delete()
        registry_changed()
        transaction.on_commit(lambda: _artifacts_delete(paths))
    return len(versions)


def _artifacts_delete(paths: list[str]) -> None:
    for path in paths:
        artifacts.artifact_delete(path)


def registry_tenant_delete(*, tenant: str) -> dict[str, int]:
    """Delete a tenant's models (versions, artifacts, promotion history) and revoke its tokens.

    Called by `tenant_delete` (monitoring/services/tenants.py) after the rows of the apps
    above the registry are gone.
    """
    PromotionEvent.objects.filter(tenant=tenant).delete()
    versions = list(ModelVersion.objects.filter(tenant=tenant))
    models = model_versions_delete(versions=versions, force=True) if versions else 0
    tokens = 0
    for token in ApiToken.objects.filter(tenant=tenant, revoked_at__isnull=True):
        api_token_revoke(token=token)
        tokens += 1
    return {"models": models, "tokens_revoked": tokens}

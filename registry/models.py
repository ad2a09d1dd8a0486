"""Model versions, their promotion history, and API tokens (tenant ownership)."""
from __future__ import annotations

from django.db import models
from django.db.models import Q

from leadml.ml.types import CUSTOMER_LIFETIME_VALUE, LEAD_CONVERSION
from leadml.api.models import TimeStampedModel


class ModelType(models.TextChoices):
    LEAD_CONVERSION = LEAD_CONVERSION, "Lead conversion"
    CUSTOMER_LIFETIME_VALUE = CUSTOMER_LIFETIME_VALUE, "Customer lifetime value"


class ApiToken(TimeStampedModel):
    """A bearer key. Only its sha256 is stored; the key itself is shown once at creation."""

    name = models.CharField(max_length=200)
    # Blank for service tokens, which may act for any tenant (the CRM's backend).
    tenant = models.CharField(max_length=200, blank=True, db_index=True)
    is_service = models.BooleanField(default=False)
    key_prefix = models.CharField(max_length=12, help_text="First characters of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(is_service=True, tenant="") | Q(is_service=False) & ~Q(tenant=""),
                name="api_token_scope_is_tenant_or_service",
            )
        ]

    def __str__(self) -> str:
        scope = "service" if self.is_service else f"tenant {self.tenant}"
        return f"{self.name} ({scope}, {self.key_prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ModelVersion(TimeStampedModel):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CANDIDATE = "candidate", "Candidate"
        ARCHIVED = "archived", "Archived"
        BROKEN = "broken", "Broken"

    tenant = models.CharField(max_length=200, db_index=True)
    model_type = models.CharField(max_length=40, choices=ModelType.choices)
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    algorithm = models.CharField(max_length=40)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CANDIDATE, db_index=True)

    metrics = models.JSONField(default=dict, blank=True)
    cross_validation = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True, help_text="Best hyperparameters found by the search.")
    feature_schema = models.JSONField(default=dict, blank=True)
    feature_importance = models.JSONField(default=list, blank=True)
    explanation_method = models.CharField(max_length=60, blank=True)
    training_report = models.JSONField(default=dict, blank=True)
    training_config = models.JSONField(default=dict, blank=True)
    trained_rows = models.PositiveIntegerField(default=0)

    artifact_path = models.CharField(max_length=500)
    artifact_sha256 = models.CharField(max_length=64)
    artifact_size = models.PositiveBigIntegerField(default=0)
    broken_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["tenant", "name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name", "version"], name="model_version_unique_per_name"),
            models.UniqueConstraint(
                fields=["tenant", "model_type"],
                condition=Q(status="active"),
                name="one_active_model_per_tenant_and_type",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "model_type", "status"])]

    def __str__(self) -> str:
        return f"{self.tenant}/{self.name} v{self.version} ({self.algorithm}, {self.status})"

    @property
    def main_metric(self) -> tuple[str, float | None]:
        key = "roc_auc" if self.model_type == LEAD_CONVERSION else "r2"
        return key, self.metrics.get(key)


class PromotionEvent(models.Model):
    """One change of a tenant's active version for a model type: who, when, why."""

    tenant = models.CharField(max_length=200, db_index=True)
    model_type = models.CharField(max_length=40, choices=ModelType.choices)
    from_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    to_version = models.ForeignKey(ModelVersion, null=True, on_delete=models.SET_NULL, related_name="promotions")
    actor = models.CharField(max_length=200)
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.tenant} {self.model_type}: {self.from_version_id} -> {self.to_version_id} by {self.actor}"


class RegistryState(models.Model):
    """One row whose counter moves with every change that decides what a request is served.

    Activations, rollbacks, new versions, archived, broken or deleted versions and revoked
    tokens move it (registry.services.registry_changed, in the change's own transaction).
    Each serving process keeps tokens and chosen versions in memory and reads only this
    counter per request: when it moved, the process forgets what it kept (registry.cache).
    """

    generation = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"registry generation {self.generation}"

"""Outcomes of scored entities, per-tenant trigger settings and webhooks, monitoring events."""
from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from leadml.api.models import TimeStampedModel
from predictions.models import Prediction
from registry.models import ModelType, ModelVersion
from training.models import DatasetRow


class Outcome(TimeStampedModel):
    """What really happened to a scored lead or customer: one per entity and model type."""

    tenant = models.CharField(max_length=200)
    model_type = models.CharField(max_length=40, choices=ModelType.choices)
    # The CRM's id of the lead or customer; blank when the outcome named a prediction
    # whose record carried no id.
    entity_id = models.CharField(max_length=200, blank=True, db_index=True)
    # What makes an outcome "the same": the entity id, or "prediction:<id>" without one.
    entity_key = models.CharField(max_length=220)
    # The latest prediction made for the entity when the outcome arrived.
    prediction = models.ForeignKey(
        Prediction, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    value = models.JSONField(help_text="The outcome as the CRM sent it.")
    # 0/1 for lead conversion, the realised value for CLV.
    label = models.FloatField()
    observed_at = models.DateTimeField()
    # The training row the outcome appended (the prediction's input plus the outcome).
    dataset_row = models.OneToOneField(
        DatasetRow, null=True, blank=True, on_delete=models.SET_NULL, related_name="outcome"
    )

    class Meta:
        ordering = ["-observed_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "model_type", "entity_key"], name="outcome_once_per_entity"),
        ]
        indexes = [
            models.Index(fields=["tenant", "model_type", "entity_id"]),
            models.Index(fields=["tenant", "model_type", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"outcome {self.entity_key} = {self.value!r} ({self.tenant}, {self.model_type})"


# The same bounds as the API's (monitoring/apis/events.py TriggerSettingsApi): a margin is a share
# of the metric, a minimum of 0 would fire its trigger at every evaluation.
MARGIN = [MinValueValidator(0.0), MaxValueValidator(1.0)]
AT_LEAST_ONE = [MinValueValidator(1)]


class TriggerSettings(TimeStampedModel):
    """A tenant's overrides of the retraining triggers for one model type; blank = default.

    Field names match the keys of settings.LEADML_TRIGGER_DEFAULTS.
    """

    tenant = models.CharField(max_length=200)
    model_type = models.CharField(max_length=40, choices=ModelType.choices)
    live_performance_enabled = models.BooleanField(null=True, blank=True)
    live_performance_margin = models.FloatField(null=True, blank=True, validators=MARGIN)
    live_performance_min_outcomes = models.PositiveIntegerField(null=True, blank=True, validators=AT_LEAST_ONE)
    estimated_performance_enabled = models.BooleanField(null=True, blank=True)
    estimated_performance_margin = models.FloatField(null=True, blank=True, validators=MARGIN)
    estimated_performance_min_predictions = models.PositiveIntegerField(null=True, blank=True, validators=AT_LEAST_ONE)
    data_drift_enabled = models.BooleanField(null=True, blank=True)
    data_drift_min_predictions = models.PositiveIntegerField(null=True, blank=True, validators=AT_LEAST_ONE)
    new_rows_enabled = models.BooleanField(null=True, blank=True)
    new_rows_min = models.PositiveIntegerField(null=True, blank=True, validators=AT_LEAST_ONE)
    max_age_enabled = models.BooleanField(null=True, blank=True)
    max_age_days = models.PositiveIntegerField(null=True, blank=True, validators=AT_LEAST_ONE)

    class Meta:
        verbose_name_plural = "trigger settings"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "model_type"], name="trigger_settings_once_per_type"),
        ]

    def __str__(self) -> str:
        return f"triggers of {self.tenant} / {self.model_type}"


class TenantWebhook(TimeStampedModel):
    """Where a tenant's monitoring events are POSTed, signed with its secret."""

    tenant = models.CharField(max_length=200, unique=True)
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=200, help_text="HMAC-SHA256 key of the X-Leadml-Signature header.")
    enabled = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"webhook of {self.tenant} -> {self.url}"


class MonitoringEvent(models.Model):
    class Kind(models.TextChoices):
        TRIGGER_FIRED = "trigger_fired", "Trigger fired"
        RETRAIN_QUEUED = "retrain_queued", "Retrain queued"
        RETRAIN_FINISHED = "retrain_finished", "Retrain finished"
        PROMOTION = "promotion", "Active version changed"

    class Delivery(models.TextChoices):
        NONE = "", "No webhook"
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    tenant = models.CharField(max_length=200)
    model_type = models.CharField(max_length=40, choices=ModelType.choices)
    model_name = models.CharField(max_length=200, blank=True)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    kind = models.CharField(max_length=30, choices=Kind.choices)
    message = models.TextField()
    values = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    webhook_status = models.CharField(max_length=20, choices=Delivery.choices, default=Delivery.NONE, blank=True)
    webhook_attempts = models.PositiveSmallIntegerField(default=0)
    webhook_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "model_type", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.tenant}/{self.model_name or self.model_type}: {self.message}"


class SourceSyncState(TimeStampedModel):
    """Where the outcome sync of one data source stands for one tenant (monitoring/services/source_sync.py).

    `high_water`: the latest `changed_at` read; the next sync reads from a little before
    it (the overlap), and outcomes already stored count as duplicates.
    """

    class Status(models.TextChoices):
        OK = "ok", "OK"
        FAILED = "failed", "Failed"

    source = models.ForeignKey("training.DataSource", on_delete=models.CASCADE, related_name="sync_states")
    tenant = models.CharField(max_length=200)
    high_water = models.DateTimeField(null=True, blank=True)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, blank=True)
    error = models.TextField(blank=True)
    rows_read = models.PositiveIntegerField(default=0, help_text="terminal status changes read by the last sync")
    outcomes_recorded = models.PositiveIntegerField(default=0, help_text="outcomes stored or changed by the last sync")
    outcomes_recorded_total = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["source", "tenant"]
        constraints = [
            models.UniqueConstraint(fields=["source", "tenant"], name="source_sync_once_per_tenant"),
        ]

    def __str__(self) -> str:
        return f"sync of {self.source} for {self.tenant}"

"""Uploaded training data (one database row per record) and training jobs."""
from __future__ import annotations

import uuid

from django.db import models

from leadml.models import TimeStampedModel
from registry.models import ModelType, ModelVersion


class Dataset(TimeStampedModel):
    class Kind(models.TextChoices):
        RECORDS = "records", "One record per lead or customer"
        TRANSACTIONS = "transactions", "Transaction log, turned into one row per customer"

    class Status(models.TextChoices):
        LOADING = "loading", "Loading: rows still being written, not used"
        READY = "ready", "Ready"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.RECORDS)
    # Rows are written in short transactions; the dataset is used only once all are in.
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.READY)
    # kind=transactions: the log's column names, calibration_end, horizon_days and counts.
    source_config = models.JSONField(default=dict, blank=True)
    tenant = models.CharField(max_length=200, db_index=True)
    model_type = models.CharField(max_length=40, choices=ModelType.choices)
    name = models.CharField(max_length=200)
    target = models.CharField(max_length=200, help_text="Name of the target column in the uploaded records.")
    positive_values = models.JSONField(default=list, blank=True)
    columns = models.JSONField(default=list)
    row_count = models.PositiveIntegerField(default=0)
    labelled_row_count = models.PositiveIntegerField(default=0)
    quality_report = models.JSONField(default=dict, blank=True)
    source_filename = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "model_type"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.tenant}, {self.model_type}, {self.row_count} rows)"


class DatasetRow(models.Model):
    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        OUTCOME = "outcome", "Outcome"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="rows")
    # Denormalised so "all of a tenant's rows for a model type" is one indexed scan.
    tenant = models.CharField(max_length=200)
    model_type = models.CharField(max_length=40, choices=ModelType.choices)
    row_number = models.PositiveIntegerField()
    data = models.JSONField(help_text="The record as uploaded, target column included.")
    # 0/1 for lead conversion, the value for CLV; null when the record has no outcome yet.
    label = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.UPLOAD)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset", "row_number"]
        indexes = [models.Index(fields=["tenant", "model_type"])]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "row_number"], name="dataset_row_number_unique"),
        ]

    def __str__(self) -> str:
        return f"row {self.row_number} of {self.dataset_id}"


class TrainingJob(TimeStampedModel):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.CharField(max_length=200, db_index=True)
    model_type = models.CharField(max_length=40, choices=ModelType.choices)
    algorithm = models.CharField(max_length=40)
    model_name = models.CharField(max_length=200)
    training_config = models.JSONField(default=dict, blank=True)
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    requested_by = models.CharField(max_length=200, blank=True)

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress_step = models.CharField(max_length=60, blank=True)
    progress_percent = models.PositiveSmallIntegerField(default=0)
    log = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    # Deliveries used: each run started, and each task lost before a worker started it.
    # Also the claim's fencing token: a worker writes only while the count is its own,
    # so a worker presumed dead cannot touch a job that was re-queued and claimed again.
    attempts = models.PositiveSmallIntegerField(default=0)

    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="When a task for it last went to the broker.")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the process that claimed it last.")
    # Recorded before the artifact file is written, so the file of a worker killed while
    # writing it (or before registering it) can be removed by whoever takes the job over.
    artifact_path = models.CharField(max_length=500, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_jobs"
    )
    # Set when the job retrains an existing version (triggers, manual request).
    retrain_of = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="retrain_jobs"
    )
    retrain_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "status"])]
        constraints = [
            # Two schedulers racing can never queue the same model's retrain twice.
            models.UniqueConstraint(
                fields=["tenant", "model_name"],
                condition=models.Q(status__in=["queued", "running"], retrain_of__isnull=False),
                name="one_retrain_in_flight_per_model",
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.id} ({self.tenant}/{self.model_name}, {self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or self.heartbeat_at or self.started_at
        return round((end - self.started_at).total_seconds(), 3)

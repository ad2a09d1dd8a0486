"""Uploaded training data (one database row per record) and training jobs."""
from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import models

from leadml.api.models import TimeStampedModel
from registry.models import ModelType, ModelVersion
from training.source_urls import url_masked, url_problem


class Dataset(TimeStampedModel):
    class Kind(models.TextChoices):
        RECORDS = "records", "One record per lead or customer"
        TRANSACTIONS = "transactions", "Transaction log, turned into one row per customer"
        SOURCE = "source", "Read from an operator's data source (the CRM's database) at training time"

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
    # kind=source: the operator's data source it was read from (source_config says when,
    # the query's sha256 and the counts).
    data_source = models.ForeignKey(
        "training.DataSource", null=True, blank=True, on_delete=models.SET_NULL, related_name="datasets"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "model_type"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.tenant}, {self.model_type}, {self.row_count} rows)"

    @property
    def built_from_transactions(self) -> bool:
        """A per-customer table the service built from a purchase log (uploaded or read from a source)."""
        return self.kind == self.Kind.TRANSACTIONS or (
            self.kind == self.Kind.SOURCE and (self.source_config or {}).get("source_kind") == "transactions"
        )


class DatasetRow(models.Model):
    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        OUTCOME = "outcome", "Outcome"
        DATA_SOURCE = "source", "Data source"

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


class DataSource(TimeStampedModel):
    """A database leadml reads tenants' training rows and outcomes from (README, "Training from the CRM's database").

    Configured by the operator (the admin, or LEADML_DATA_SOURCES), never by a tenant: a
    tenant names a source, and its query reads only that tenant's rows (`%(user_id)s`).
    The URL holds the credentials: it is never shown (`masked_url`), logged or answered.
    """

    class Kind(models.TextChoices):
        RECORDS = "records", "One row per lead or customer"
        TRANSACTIONS = "transactions", "One row per purchase (customer_id, date, amount)"

    class SyncStatus(models.TextChoices):
        NEVER = "", "Never synced"
        OK = "ok", "OK"
        FAILED = "failed", "Failed"

    name = models.SlugField(max_length=100, unique=True, help_text="What a tenant's training_config.source names.")
    url = models.TextField(
        help_text="postgres://user:password@host:5432/dbname of the CRM database; read only, never shown again."
    )
    model_type = models.CharField(max_length=40, choices=ModelType.choices, default=ModelType.LEAD_CONVERSION)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.RECORDS)
    query = models.TextField(
        help_text="SQL with a %(user_id)s parameter: one row per lead (records) or per purchase (transactions). "
        "Write a literal % as %%."
    )
    changes_query = models.TextField(
        blank=True,
        help_text="lead_conversion: SQL with %(user_id)s, %(since)s and %(terminal_values)s returning entity_id, "
        "outcome, changed_at of the leads whose status became terminal since then (the outcome sync). Blank: no sync.",
    )
    target_column = models.CharField(max_length=200, default="status", blank=True)
    positive_values = models.JSONField(default=list, blank=True, help_text="Target values meaning converted.")
    negative_values = models.JSONField(
        default=list, blank=True, help_text="Target values meaning not converted; any other value is open (unlabelled)."
    )
    horizon_days = models.PositiveIntegerField(default=365, help_text="transactions: the CLV horizon.")
    statement_timeout_seconds = models.PositiveIntegerField(default=120)
    enabled = models.BooleanField(default=True)
    from_settings = models.BooleanField(
        default=False, editable=False, help_text="Loaded from LEADML_DATA_SOURCES: the next start-up overwrites edits."
    )

    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_status = models.CharField(max_length=10, choices=SyncStatus.choices, default=SyncStatus.NEVER, blank=True)
    last_sync_error = models.TextField(blank=True)
    last_sync_rows_read = models.PositiveIntegerField(default=0)
    last_sync_outcomes_recorded = models.PositiveIntegerField(default=0)
    outcomes_recorded_total = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def masked_url(self) -> str:
        return url_masked(self.url)

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        problem = url_problem(self.url or "")
        if problem:
            errors["url"] = [problem]
        self.query = (self.query or "").strip().rstrip(";").strip()
        self.changes_query = (self.changes_query or "").strip().rstrip(";").strip()
        if "%(user_id)s" not in self.query:
            errors["query"] = ["must read one tenant's rows: use the %(user_id)s parameter"]
        if self.changes_query:
            missing = [name for name in ("user_id", "since") if f"%({name})s" not in self.changes_query]
            if missing:
                errors["changes_query"] = [f"must use the parameters {', '.join(f'%({n})s' for n in missing)}"]
            if self.model_type != ModelType.LEAD_CONVERSION:
                errors["changes_query"] = ["outcomes are synced from status changes for lead_conversion only"]
        if self.kind == self.Kind.TRANSACTIONS and self.model_type != ModelType.CUSTOMER_LIFETIME_VALUE:
            errors["kind"] = ["a transaction log builds lifetime-value data: model_type must be customer_lifetime_value"]
        if self.kind == self.Kind.RECORDS:
            if not self.target_column:
                errors["target_column"] = ["required for records"]
            if self.model_type == ModelType.LEAD_CONVERSION and not self.positive_values:
                errors["positive_values"] = ["name the target values meaning converted, e.g. [\"customer\"]"]
        for name in ("positive_values", "negative_values"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(item, (str, int, float, bool)) for item in value):
                errors[name] = ["must be a list of values"]
        if errors:
            raise ValidationError(errors)

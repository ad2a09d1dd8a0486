"""What the training APIs answer (training/presenters.py: `job_summary`, `synchronous_result`, `dataset_summary`), for the schema."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from leadml.api.fields import ModelTypeField
from leadml.api.serializers import QualityReportSerializer
from registry.models import ModelVersion
from registry.serializers import ModelMetadataSerializer, ModelMetricsSerializer
from training.models import Dataset, TrainingJob


@extend_schema_serializer(component_name="TrainResponse")
class TrainResultSerializer(serializers.Serializer):
    """The original service's synchronous `/train` answer, plus the job and the version it made."""

    success = serializers.BooleanField()
    model_path = serializers.CharField()
    metadata = ModelMetadataSerializer()
    metrics = ModelMetricsSerializer()
    job_id = serializers.UUIDField()
    status_url = serializers.CharField(help_text="GET it for the job")
    model_version = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=ModelVersion.Status.choices, help_text="active, or candidate when it did not beat the active version"
    )


class JobProgressSerializer(serializers.Serializer):
    step = serializers.CharField(allow_blank=True)
    percent = serializers.IntegerField()


class JobLogEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    step = serializers.CharField()
    percent = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(required=False, help_text="on the failed or cancelled entry")
    message = serializers.CharField(required=False, help_text="what a step did (read_source: rows read)")


@extend_schema_serializer(component_name="TrainingJobResponse")
class TrainingJobSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="false once the job failed")
    job_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=TrainingJob.Status.choices)
    user_id = serializers.CharField()
    model_type = ModelTypeField()
    algorithm = serializers.CharField()
    model_name = serializers.CharField()
    progress = JobProgressSerializer()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    attempts = serializers.IntegerField()
    cancel_requested = serializers.BooleanField()
    error = serializers.CharField(allow_null=True)
    log = JobLogEntrySerializer(many=True)
    model_version = serializers.IntegerField(allow_null=True, help_text="the version it registered")
    result = TrainResultSerializer(required=False, help_text="once it registered a version")


class TransactionsSourceSerializer(serializers.Serializer):
    """How a kind=transactions dataset was built from its purchase log, or where a kind=source one was read (empty for records)."""

    customer_column = serializers.CharField(required=False)
    date_column = serializers.CharField(required=False)
    amount_column = serializers.CharField(required=False)
    calibration_end = serializers.DateField(required=False)
    horizon_days = serializers.IntegerField(required=False)
    transactions = serializers.IntegerField(required=False)
    skipped_without_customer = serializers.IntegerField(required=False, help_text="lines with no customer id (guests)")
    skipped_amount = serializers.FloatField(required=False, help_text="what those lines add up to")
    customers = serializers.IntegerField(required=False)
    first_date = serializers.DateField(required=False)
    last_date = serializers.DateField(required=False)
    feature_descriptions = serializers.DictField(child=serializers.CharField(), required=False)
    # kind=source: where and when the rows were read (README, "Training from the CRM's database").
    source = serializers.CharField(required=False, help_text="kind=source: the data source's name")
    source_id = serializers.IntegerField(required=False)
    source_kind = serializers.CharField(required=False, help_text="records or transactions")
    query_sha256 = serializers.CharField(required=False, help_text="sha256 of the query that read the rows")
    read_at = serializers.DateTimeField(required=False)
    source_rows = serializers.IntegerField(required=False, help_text="rows the query returned")
    negative_values = serializers.ListField(
        child=serializers.JSONField(), required=False, help_text="target values meaning not converted; others are open"
    )


@extend_schema_serializer(component_name="DatasetResponse")
class DatasetSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    dataset_id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=Dataset.Kind.choices)
    status = serializers.ChoiceField(
        choices=Dataset.Status.choices, help_text="loading: rows still being written, not used for training yet"
    )
    source_config = TransactionsSourceSerializer()
    user_id = serializers.CharField()
    model_type = ModelTypeField()
    name = serializers.CharField()
    target = serializers.CharField()
    positive_values = serializers.ListField(child=serializers.JSONField(), help_text="target values meaning converted")
    rows = serializers.IntegerField()
    labelled_rows = serializers.IntegerField()
    columns = serializers.ListField(child=serializers.CharField())
    quality_report = QualityReportSerializer()
    created_at = serializers.DateTimeField()


class FeatureSelectionSerializer(serializers.Serializer):
    """What /preprocess's feature selection scored and kept."""

    method = serializers.CharField(help_text="k_best or mutual_info")
    k = serializers.IntegerField()
    scores = serializers.DictField(child=serializers.FloatField(allow_null=True), help_text="output column → score")
    kept = serializers.ListField(child=serializers.CharField())

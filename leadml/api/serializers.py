"""Schema pieces every app's API shares: the one error shape, the `{model_type}` path
parameter, ranked `[name, weight]` pairs and the ML core's report blocks.

The views answer with the dicts their services build (a 10,000-row batch must not pass
through a serializer field by field); these serializers only describe those dicts to
drf-spectacular, and tests/contract checks every answer against them.
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from leadml.ml.types import MODEL_TYPES

MODEL_TYPE_PATH_PARAMETER = OpenApiParameter(
    "model_type",
    str,
    OpenApiParameter.PATH,
    enum=list(MODEL_TYPES),
    description="lead_conversion or customer_lifetime_value (anything else is a 400)",
)

_MESSAGES = {"type": "array", "items": {"type": "string"}}


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": _MESSAGES,
        "description": "field (dotted for nested input, e.g. `data[3].lead_score`) → messages",
    }
)
class ErrorDetailsField(serializers.DictField):
    pass


@extend_schema_serializer(component_name="ErrorResponse")
class ErrorResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="always false")
    error = serializers.CharField(help_text="what went wrong, in one line")
    detail = serializers.CharField(help_text="the same message under FastAPI's key, which older clients read")
    details = ErrorDetailsField()


ERROR_DESCRIPTIONS = {
    400: "Invalid input; `details` names each refused field",
    401: "No valid API token",
    403: "The token may not act for this user_id",
    404: "Not found (another tenant's resources are not found either)",
    409: "Conflicts with the current state",
    413: "Past a size limit (request body, upload, rows per call)",
    422: "The training job failed or was cancelled while the request waited for it",
    429: "Too many requests for this token",
    500: "Unexpected server error (logged; no internals in the message)",
    503: "The job queue cannot be reached: nothing was queued; retry after the `Retry-After` header's seconds",
}
# Every token-authenticated endpoint can answer these, whatever it does.
AUTHENTICATED_ERRORS = (401, 429, 500)


def error_responses(*statuses: int, authenticated: bool = True) -> dict[int, OpenApiResponse]:
    """Return `ErrorResponse` entries for `@extend_schema(responses=...)`: these statuses plus the common ones."""
    common = AUTHENTICATED_ERRORS if authenticated else (500,)
    return {
        status: OpenApiResponse(ErrorResponseSerializer, description=ERROR_DESCRIPTIONS[status])
        for status in sorted({*statuses, *common})
    }


@extend_schema_serializer(component_name="SuccessResponse")
class SuccessSerializer(serializers.Serializer):
    success = serializers.BooleanField()


@extend_schema_field(
    {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "number"}],
        "minItems": 2,
        "maxItems": 2,
        "description": "[feature name, weight]",
    }
)
class FeatureWeightField(serializers.ListField):
    pass


class FeatureWeightListField(serializers.ListField):
    """Ranked `[name, weight]` pairs, largest weight first."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=FeatureWeightField(), **kwargs)


class DroppedColumnSerializer(serializers.Serializer):
    name = serializers.CharField()
    reason = serializers.CharField()


class PreprocessingOptionsSerializer(serializers.Serializer):
    # Versions trained before these options were recorded have none of them.
    missing_value_strategy = serializers.CharField(required=False)
    categorical_encoding = serializers.CharField(required=False)
    scaling = serializers.CharField(required=False)
    feature_selection = serializers.CharField(required=False)
    k = serializers.IntegerField(required=False)
    fill_value = serializers.JSONField(required=False)


# Built with type(): `from` is a Python keyword, so it cannot be a class attribute.
EngineeredFeatureSerializer = type(
    "EngineeredFeatureSerializer",
    (serializers.Serializer,),
    {
        "feature": serializers.CharField(),
        "from": serializers.ListField(child=serializers.CharField(), help_text="the input columns it is made of"),
        "kind": serializers.ChoiceField(choices=["numeric", "categorical"]),
        "how": serializers.CharField(),
    },
)


class FeatureEngineeringReportSerializer(serializers.Serializer):
    options = serializers.DictField(help_text="the feature-engineering options in effect")
    features = EngineeredFeatureSerializer(many=True, help_text="each column the model sees, and where it came from")
    log_transformed = serializers.ListField(child=serializers.CharField())
    interactions = serializers.ListField(child=serializers.CharField())
    btyd = serializers.DictField(allow_null=True, help_text="BG/NBD + Gamma-Gamma fit (transaction-built data)")
    unused_inputs = serializers.ListField(child=serializers.CharField())


class LeakageEvidenceSerializer(serializers.Serializer):
    """What one column says about leaking the outcome (leadml.ml.quality.leakage_evidence)."""

    column = serializers.CharField()
    kind = serializers.CharField()
    power = serializers.FloatField(allow_null=True, help_text="alone: ROC-AUC (leads) or |Spearman| (CLV)")
    power_metric = serializers.ChoiceField(choices=("roc_auc", "spearman"))
    name_words = serializers.ListField(child=serializers.CharField(), help_text="outcome words in its name")
    value_words = serializers.ListField(child=serializers.CharField(), help_text="outcome words in its values")
    value_word_share = serializers.FloatField(help_text="share of rows whose value carries an outcome word")
    fill_rates = serializers.DictField(
        child=serializers.FloatField(), allow_null=True, help_text="outcome → share of rows where it is filled"
    )
    one_class_fill = serializers.BooleanField()
    post_outcome_name = serializers.BooleanField(help_text="its name says it is known only after the outcome")
    verdict = serializers.ChoiceField(choices=("exclude", "warn"), allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    score = serializers.FloatField(allow_null=True, help_text="the same as power (older reports' name)")


class QualityReportSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    columns = serializers.IntegerField()
    missing_share = serializers.DictField(child=serializers.FloatField(), help_text="column → share missing")
    constant_columns = serializers.ListField(child=serializers.CharField())
    duplicate_rows = serializers.IntegerField()
    column_kinds = serializers.DictField(child=serializers.CharField(), help_text="column → inferred kind")
    dropped_columns = DroppedColumnSerializer(many=True)
    column_warnings = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="e.g. an ambiguous date format, a repeated id kept"
    )
    sampled_rows = serializers.IntegerField(required=False, help_text="when the kinds were inferred from a sample")
    # With a target only (training data, not /preprocess without config.target):
    labelled_rows = serializers.IntegerField(required=False)
    unlabelled_rows = serializers.IntegerField(required=False)
    leakage_suspects = LeakageEvidenceSerializer(many=True, required=False, help_text="excluded unless allowed")
    leakage_warnings = LeakageEvidenceSerializer(many=True, required=False, help_text="weaker evidence, kept")
    column_evidence = LeakageEvidenceSerializer(many=True, required=False, help_text="every candidate column")
    target = serializers.DictField(
        child=serializers.FloatField(allow_null=True),
        required=False,
        help_text="leads: positive, negative, positive_rate; CLV: mean, std, min, 25%, 50%, 75%, max, zero_share",
    )


# --- GET /health (leadml/health.py) -------------------------------------------------------

CHECK_STATUSES = ("up", "down")


class DatabaseCheckSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=CHECK_STATUSES)
    vendor = serializers.CharField(required=False, help_text="when up: sqlite, postgresql, ...")
    error = serializers.CharField(required=False, help_text="when down: the exception's class")


class JobQueueCheckSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=CHECK_STATUSES)
    broker = serializers.CharField(required=False, help_text="inline, orm or redis (down: the broker's class)")
    queued_tasks = serializers.IntegerField(required=False)
    error = serializers.CharField(required=False)


class ModelStorageCheckSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=CHECK_STATUSES)
    error = serializers.CharField(required=False)


class ModelsCheckSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=("up", "degraded", "unknown"),
        help_text="degraded: broken versions, or artifacts this process could not load; unknown: database down",
    )
    broken_versions = serializers.IntegerField(required=False, help_text="versions no host can serve")
    artifact_faults = serializers.IntegerField(
        required=False, help_text="versions whose artifact this process could not load (served by an older version)"
    )


class DataSourcesCheckSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=("up", "degraded", "unknown"),
        help_text="degraded: a data source's last outcome sync failed (scoring goes on); unknown: database down",
    )
    configured = serializers.IntegerField(required=False, help_text="enabled data sources")
    failed = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="names of the sources whose last sync failed"
    )


class HealthChecksSerializer(serializers.Serializer):
    database = DatabaseCheckSerializer()
    job_queue = JobQueueCheckSerializer()
    model_storage = ModelStorageCheckSerializer()
    models = ModelsCheckSerializer()
    data_sources = DataSourcesCheckSerializer()


@extend_schema_serializer(component_name="HealthResponse")
class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=("healthy", "degraded", "unhealthy"),
        help_text="healthy and degraded answer 200 (serving); unhealthy 503 (database or model storage down)",
    )
    timestamp = serializers.DateTimeField()
    version = serializers.CharField()
    services = serializers.DictField(
        child=serializers.ChoiceField(choices=("available", "unavailable")),
        help_text="database, job_queue, model_storage and models (and data_sources once one is configured) → one word each",
    )
    checks = HealthChecksSerializer()

"""What monitoring/services build (report, summary, triggers, events, outcomes), for the schema."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from leadml.api.fields import ModelTypeField
from monitoring.models import MonitoringEvent
from registry.models import ModelVersion


def _nullable_float(help_text: str = "") -> serializers.FloatField:
    return serializers.FloatField(allow_null=True, help_text=help_text)


class MonitoredModelSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()
    algorithm = serializers.CharField()
    status = serializers.ChoiceField(choices=ModelVersion.Status.choices)
    trained_at = serializers.DateTimeField()


class MonitoringWindowSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    last = serializers.IntegerField(allow_null=True, help_text="?last=N, when asked for")
    predictions = serializers.IntegerField(help_text="the version's model predictions in the window")
    sampled = serializers.IntegerField(help_text="how many of them the report read")
    with_outcomes = serializers.IntegerField()


class FeatureDriftSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["numeric", "categorical"])
    method = serializers.CharField(help_text="ks, wasserstein, chi_square, jensen_shannon or insufficient_data")
    statistic = _nullable_float()
    p_value = _nullable_float()
    psi = _nullable_float()
    threshold = _nullable_float()
    drifted = serializers.BooleanField()
    reference_rows = serializers.IntegerField()
    current_rows = serializers.IntegerField()


class DataDriftSerializer(serializers.Serializer):
    dataset_drift = serializers.BooleanField()
    drift_share = _nullable_float("drifted share of the tested features")
    # Absent, with `unavailable` instead, when drift cannot be measured.
    drifted_features = serializers.IntegerField(required=False, help_text="how many tested features drifted")
    tested_features = serializers.IntegerField(required=False)
    threshold = serializers.FloatField(required=False, help_text="drift share at which the dataset drifts")
    features = FeatureDriftSerializer(many=True)
    unavailable = serializers.CharField(required=False, help_text="why drift could not be measured")


class PredictionDriftSerializer(serializers.Serializer):
    method = serializers.CharField(help_text="ks or insufficient_data")
    statistic = _nullable_float()
    p_value = _nullable_float()
    psi = _nullable_float()
    reference_mean = _nullable_float()
    current_mean = _nullable_float()
    reference_rows = serializers.IntegerField()
    current_rows = serializers.IntegerField()
    drifted = serializers.BooleanField()


class DataQualitySerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    missing_share = _nullable_float()
    training_missing_share = _nullable_float()
    outlier_share = _nullable_float("share outside the training range (numeric fields)")
    training_outlier_share = _nullable_float()
    flagged = serializers.BooleanField()
    reason = serializers.CharField(allow_null=True)


def _metric(help_text: str = "") -> serializers.FloatField:
    return serializers.FloatField(required=False, allow_null=True, help_text=help_text)


class MonitoredMetricsSerializer(serializers.Serializer):
    """Leads: roc_auc, accuracy, precision, recall, f1, brier; CLV: mae, rmse, r2."""

    roc_auc = _metric()
    accuracy = _metric()
    precision = _metric()
    recall = _metric()
    f1 = _metric()
    brier = _metric()
    mae = _metric()
    rmse = _metric()
    r2 = _metric()


class LiveMetricsSerializer(MonitoredMetricsSerializer):
    rows = serializers.IntegerField(help_text="predictions with outcomes the metrics rest on")


class EstimatedPerformanceSerializer(serializers.Serializer):
    method = serializers.CharField(help_text="cbpe (confidence-based performance estimation)")
    rows = serializers.IntegerField()
    roc_auc = _nullable_float()
    accuracy = _nullable_float()
    precision = _nullable_float()
    recall = _nullable_float()
    f1 = _nullable_float()
    threshold = serializers.FloatField()


class PerformanceSerializer(serializers.Serializer):
    training = MonitoredMetricsSerializer(help_text="the version's held-out test metrics")
    live = LiveMetricsSerializer(help_text="on the window's predictions that have outcomes")
    estimated = EstimatedPerformanceSerializer(allow_null=True, help_text="lead models only")


@extend_schema_field({"type": ["number", "string", "null"]})
class TriggerValueField(serializers.JSONField):
    """A measurement (share, metric, rows, days) or, for `manual`, the pending job's id."""


class TriggerSerializer(serializers.Serializer):
    name = serializers.CharField(
        help_text="live_performance, estimated_performance, data_drift, new_labelled_rows, max_age or manual"
    )
    enabled = serializers.BooleanField()
    fired = serializers.BooleanField()
    value = TriggerValueField()
    threshold = _nullable_float()
    reason = serializers.CharField()


# --- the summary /insights carries ---------------------------------------------------------


class DriftSummarySerializer(serializers.Serializer):
    dataset_drift = serializers.BooleanField()
    drift_share = _nullable_float()
    drifted_features = serializers.ListField(child=serializers.CharField(), help_text="names of the drifted features")
    unavailable = serializers.CharField(required=False)


class PredictionDriftSummarySerializer(serializers.Serializer):
    drifted = serializers.BooleanField()
    psi = _nullable_float()
    statistic = _nullable_float()


class FlaggedFeatureSerializer(serializers.Serializer):
    name = serializers.CharField()
    reason = serializers.CharField(allow_null=True)


class QualitySummarySerializer(serializers.Serializer):
    flagged_features = FlaggedFeatureSerializer(many=True)


class PerformanceSummarySerializer(serializers.Serializer):
    metric = serializers.CharField(help_text="the main metric: roc_auc (leads) or r2 (CLV)")
    training = _nullable_float()
    live = _nullable_float()
    live_rows = serializers.IntegerField()
    estimated = _nullable_float()


class MonitoringSummarySerializer(serializers.Serializer):
    window = MonitoringWindowSerializer()
    data_drift = DriftSummarySerializer()
    prediction_drift = PredictionDriftSummarySerializer()
    data_quality = QualitySummarySerializer()
    performance = PerformanceSummarySerializer()
    fired_triggers = serializers.ListField(child=serializers.CharField())


# --- events, trigger settings, webhooks, outcomes -------------------------------------------


class WebhookDeliverySerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[MonitoringEvent.Delivery.PENDING, MonitoringEvent.Delivery.DELIVERED, MonitoringEvent.Delivery.FAILED],
        allow_null=True,
        help_text="null without a webhook",
    )
    attempts = serializers.IntegerField()


class MonitoringEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    user_id = serializers.CharField()
    model_type = ModelTypeField()
    model_name = serializers.CharField(allow_blank=True)
    model_version_id = serializers.IntegerField(allow_null=True)
    kind = serializers.ChoiceField(choices=MonitoringEvent.Kind.choices)
    message = serializers.CharField()
    values = serializers.DictField(help_text="the event's figures (triggers, job id, versions, ...)")
    created_at = serializers.DateTimeField()
    webhook = WebhookDeliverySerializer()


class TriggerSettingsValuesSerializer(serializers.Serializer):
    live_performance_enabled = serializers.BooleanField()
    live_performance_margin = serializers.FloatField()
    live_performance_min_outcomes = serializers.IntegerField()
    estimated_performance_enabled = serializers.BooleanField()
    estimated_performance_margin = serializers.FloatField()
    estimated_performance_min_predictions = serializers.IntegerField()
    data_drift_enabled = serializers.BooleanField()
    data_drift_min_predictions = serializers.IntegerField()
    new_rows_enabled = serializers.BooleanField()
    new_rows_min = serializers.IntegerField()
    max_age_enabled = serializers.BooleanField()
    max_age_days = serializers.IntegerField()


class TriggerOverridesSerializer(TriggerSettingsValuesSerializer):
    """Only the settings the tenant overrode."""

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for field in fields.values():
            field.required = False
        return fields


class OutcomeRejectionSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="position of the refused item in the request")
    error = serializers.CharField()

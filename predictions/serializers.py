"""What predictions/services.py and insights.py answer, for the schema (see leadml/api/serializers.py)."""
from __future__ import annotations

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from leadml.api.serializers import FeatureWeightListField
from predictions.models import Prediction
from registry.serializers import CalibrationSerializer, CrossValidationSerializer, ModelMetricsSerializer

PREDICTION_CLASSES = ("high", "medium", "low")
VALUE_CATEGORIES = ("high_value", "medium_value", "low_value", "very_low_value")
TIERS = ("A", "B", "C", "D")


class ConfidenceDetailSerializer(serializers.Serializer):
    value = serializers.FloatField()
    method = serializers.CharField(
        help_text="class_probability or rules (leads); holdout_band_coverage, training_r2 or rules_evidence (CLV)"
    )


class FeatureImportanceSerializer(serializers.Serializer):
    """The model's global top features (the original shape), not this record's reasons."""

    top_features = FeatureWeightListField()
    feature_count = serializers.IntegerField()
    explanation_method = serializers.CharField(help_text="how the weights were computed; `rules` for the fallback")


class ModelInfoSerializer(serializers.Serializer):
    model_path = serializers.CharField(allow_null=True, help_text="null for the rules fallback")
    algorithm = serializers.CharField(help_text="`rules` for the rules fallback")
    training_date = serializers.DateTimeField(allow_null=True)
    # A trained model's only:
    model_name = serializers.CharField(required=False)
    version = serializers.IntegerField(required=False)
    model_version_id = serializers.IntegerField(required=False)


class ReasonSerializer(serializers.Serializer):
    """One input field's effect on this record's score, largest effect first."""

    feature = serializers.CharField()
    value = serializers.JSONField(required=False, help_text="the record's value (models only)")
    baseline_value = serializers.JSONField(required=False, help_text="the typical training record's (models only)")
    contribution = serializers.FloatField(help_text="signed, in score points (leads) or currency (CLV)")
    description = serializers.CharField()
    log_odds = serializers.FloatField(required=False, help_text="linear lead models: the exact log-odds contribution")


class ExplanationSerializer(serializers.Serializer):
    method = serializers.CharField(help_text="linear_exact, shapley_exact, shapley_sampled, or unavailable")
    baseline = serializers.FloatField(required=False, help_text="the baseline record's output, in `unit`")
    unit = serializers.CharField(required=False, help_text="score points or currency")
    detail = serializers.CharField(required=False, help_text="why there are no reasons (method unavailable)")


class _ScoredRecordSerializer(serializers.Serializer):
    """The fields a batch answer has for every record, whatever the model type."""

    confidence_detail = ConfidenceDetailSerializer()
    prediction_id = serializers.IntegerField(help_text="send it back with POST /outcomes")
    score = serializers.IntegerField(allow_null=True, help_text="0-100; null for CLV scored by the rules")
    tier = serializers.ChoiceField(choices=TIERS, allow_null=True)
    source = serializers.ChoiceField(choices=Prediction.Source.choices)
    warnings = serializers.ListField(child=serializers.CharField())
    reasons = ReasonSerializer(many=True, required=False, help_text="with explain: true")
    explanation = ExplanationSerializer(required=False)


class LeadBatchPredictionSerializer(_ScoredRecordSerializer):
    lead_id = serializers.CharField(help_text="the record's id, else lead_<position>")
    conversion_probability = serializers.FloatField()
    confidence = serializers.FloatField()
    prediction_class = serializers.ChoiceField(choices=PREDICTION_CLASSES)


class CustomerBatchPredictionSerializer(_ScoredRecordSerializer):
    customer_id = serializers.CharField(help_text="the record's customer_id or id, else customer_<position>")
    lifetime_value = serializers.FloatField()
    confidence = serializers.FloatField()
    value_category = serializers.ChoiceField(choices=VALUE_CATEGORIES)


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="BatchPrediction",
        serializers=[LeadBatchPredictionSerializer, CustomerBatchPredictionSerializer],
        resource_type_field_name=None,
    )
)
class BatchPredictionField(serializers.JSONField):
    """A lead's answer (`lead_id`, ...) or a customer's (`customer_id`, ...), as the batch's model type says."""


# --- GET /insights -----------------------------------------------------------------------


class MetricSummarySerializer(serializers.Serializer):
    mean = serializers.FloatField()
    std = serializers.FloatField()
    min = serializers.FloatField()
    max = serializers.FloatField()


class ImportanceTrendPointSerializer(serializers.Serializer):
    model_name = serializers.CharField()
    version = serializers.IntegerField()
    importance = serializers.FloatField()
    trained_at = serializers.DateTimeField()


class DayCountSerializer(serializers.Serializer):
    date = serializers.DateField()
    count = serializers.IntegerField()


# Built with type(): `from` is a Python keyword, so it cannot be a class attribute.
ScoreBinSerializer = type(
    "ScoreBinSerializer",
    (serializers.Serializer,),
    {
        "from": serializers.FloatField(),
        "to": serializers.FloatField(),
        "count": serializers.IntegerField(),
    },
)


class PredictionPatternsSerializer(serializers.Serializer):
    total_predictions = serializers.IntegerField()
    by_source = serializers.DictField(child=serializers.IntegerField(), help_text="model / rules → predictions")
    rules_share = serializers.FloatField(allow_null=True)
    per_day = DayCountSerializer(many=True, help_text="the last 30 days")
    score_distribution = ScoreBinSerializer(
        many=True, help_text="tenths of probability (leads) or deciles of the values (CLV)"
    )
    average_value = serializers.FloatField(allow_null=True)


class TierThresholdsSerializer(serializers.Serializer):
    """The lowest score of each tier (D is everything below C)."""

    A = serializers.FloatField()
    B = serializers.FloatField()
    C = serializers.FloatField()


class ActiveModelCardSerializer(serializers.Serializer):
    model_name = serializers.CharField()
    version = serializers.IntegerField()
    algorithm = serializers.CharField()
    trained_at = serializers.DateTimeField()
    metrics = ModelMetricsSerializer()
    cross_validation = CrossValidationSerializer()
    feature_importance = FeatureWeightListField()
    explanation_method = serializers.CharField(allow_blank=True)
    calibration = CalibrationSerializer(allow_null=True)
    tier_thresholds = TierThresholdsSerializer(allow_null=True)
    trained_rows = serializers.IntegerField()

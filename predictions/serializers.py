"""What /predict, /predict/batch and /insights answer (see leadml/api/serializers.py).

The two prediction answers are rendered here, from the service's `ScoringResult`
(predictions/results.py), by the serializers the OpenAPI schema documents. They build
the body in `to_representation` rather than field by field: a 10,000-row batch through
DRF's per-field machinery costs more than scoring it. tests/predictions/
test_response_serializers.py holds the rendered keys to the declared fields. (Fields
named `source` shadow DRF's Field.source attribute: mypy's complaint is ignored there.)
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from leadml.api.fields import ModelTypeField
from leadml.api.serializers import FeatureWeightListField
from leadml.ml.types import is_classification
from predictions.models import Prediction
from predictions.results import RecordOutput, ScoringResult
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
    source = serializers.ChoiceField(choices=Prediction.Source.choices)  # type: ignore[assignment]  # Field.source
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


# The original service's names (the CRM and its dashboards compare against them).
PREDICTION_TYPE = {True: "lead_conversion", False: "customer_lifetime_value"}


def _reasons_of(output: RecordOutput) -> dict[str, Any]:
    """The output's `reasons` and `explanation`, where it has them."""
    return {key: output[key] for key in ("reasons", "explanation") if key in output}


def _model_version_number(result: ScoringResult) -> int | None:
    return result.model_version.version if result.model_version is not None else None


@extend_schema_serializer(component_name="PredictResponse")
class PredictResponseSerializer(serializers.Serializer):
    """The original service's fields (one of each lead / CLV pair is null), then ours."""

    success = serializers.BooleanField()
    prediction_type = ModelTypeField()
    conversion_probability = serializers.FloatField(allow_null=True, help_text="leads")
    lifetime_value = serializers.FloatField(allow_null=True, help_text="CLV")
    confidence = serializers.FloatField()
    confidence_detail = ConfidenceDetailSerializer()
    prediction_class = serializers.ChoiceField(choices=PREDICTION_CLASSES, allow_null=True, help_text="leads")
    value_category = serializers.ChoiceField(choices=VALUE_CATEGORIES, allow_null=True, help_text="CLV")
    feature_importance = FeatureImportanceSerializer()
    model_info = ModelInfoSerializer()
    error = serializers.CharField(allow_null=True, help_text="always null: errors are 4xx answers")
    prediction_id = serializers.IntegerField(help_text="send it back with POST /outcomes")
    model_version = serializers.IntegerField(allow_null=True, help_text="null for the rules fallback")
    source = serializers.ChoiceField(choices=Prediction.Source.choices)  # type: ignore[assignment]  # Field.source
    score = serializers.IntegerField(allow_null=True, help_text="0-100; null for CLV scored by the rules")
    tier = serializers.ChoiceField(choices=TIERS, allow_null=True)
    warnings = serializers.ListField(child=serializers.CharField())
    reasons = ReasonSerializer(many=True, required=False, help_text="with explain: true (the default)")
    explanation = ExplanationSerializer(required=False, help_text="models only")
    fallback_reason = serializers.CharField(required=False, help_text="why the rules answered (source rules)")

    def to_representation(self, instance: ScoringResult) -> dict[str, Any]:
        output = instance.outputs[0]
        body = {
            "success": True,
            "prediction_type": PREDICTION_TYPE[is_classification(instance.model_type)],
            "conversion_probability": output.get("conversion_probability"),
            "lifetime_value": output.get("lifetime_value"),
            "confidence": output["confidence"],
            "confidence_detail": output["confidence_detail"],
            "prediction_class": output.get("prediction_class"),
            "value_category": output.get("value_category"),
            "feature_importance": instance.feature_importance,
            "model_info": instance.model_info,
            "error": None,
            "prediction_id": output.get("prediction_id"),
            "model_version": _model_version_number(instance),
            "source": instance.source,
            "score": output["score"],
            "tier": output["tier"],
            "warnings": output["warnings"],
            **_reasons_of(output),
        }
        if instance.source == "rules":
            body["fallback_reason"] = instance.fallback_reason
        return body


@extend_schema_serializer(component_name="PredictBatchResponse")
class PredictBatchResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    prediction_type = ModelTypeField()
    total_predictions = serializers.IntegerField()
    predictions = serializers.ListField(child=BatchPredictionField(), help_text="in the order of data")
    model_info = ModelInfoSerializer()
    model_version = serializers.IntegerField(allow_null=True, help_text="null for the rules fallback")
    source = serializers.ChoiceField(choices=Prediction.Source.choices)  # type: ignore[assignment]  # Field.source
    feature_importance = FeatureImportanceSerializer()
    fallback_reason = serializers.CharField(required=False, help_text="why the rules answered (source rules)")

    def to_representation(self, instance: ScoringResult) -> dict[str, Any]:
        classification = is_classification(instance.model_type)
        body = {
            "success": True,
            "prediction_type": PREDICTION_TYPE[classification],
            "total_predictions": len(instance.outputs),
            "predictions": batch_items(instance, classification=classification),
            "model_info": instance.model_info,
            "model_version": _model_version_number(instance),
            "source": instance.source,
            "feature_importance": instance.feature_importance,
        }
        if instance.source == "rules":
            body["fallback_reason"] = instance.fallback_reason
        return body


def batch_items(result: ScoringResult, *, classification: bool) -> list[dict[str, Any]]:
    """Each record's answer, in the original service's item shape (Lead/CustomerBatchPredictionSerializer)."""
    # The original service named rows without an id by their position.
    if classification:
        id_key, value_key, kind_key, unnamed = "lead_id", "conversion_probability", "prediction_class", "lead_"
    else:
        id_key, value_key, kind_key, unnamed = "customer_id", "lifetime_value", "value_category", "customer_"
    return [
        {
            id_key: entity_id or f"{unnamed}{index}",
            value_key: output.get(value_key),
            "confidence": output["confidence"],
            kind_key: output.get(kind_key),
            "confidence_detail": output["confidence_detail"],
            "prediction_id": output.get("prediction_id"),
            "score": output["score"],
            "tier": output["tier"],
            "source": output["source"],
            "warnings": output["warnings"],
            **_reasons_of(output),
        }
        for index, (entity_id, output) in enumerate(zip(result.entity_ids, result.outputs))
    ]


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

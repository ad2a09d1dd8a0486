"""`/predict` and `/predict/batch`, in the response shape the CRM already reads."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leadml.api.fields import ModelTypeField, UserIdField
from leadml.ml.types import is_classification
from leadml.api.serializers import error_responses
from predictions.models import Prediction
from predictions.serializers import (
    PREDICTION_CLASSES,
    TIERS,
    VALUE_CATEGORIES,
    BatchPredictionField,
    ConfidenceDetailSerializer,
    ExplanationSerializer,
    FeatureImportanceSerializer,
    ModelInfoSerializer,
    ReasonSerializer,
)
from predictions.services import ScoringResult, predictions_make
from leadml.api.authentication import tenant_authorize

# The original service's names (the CRM and its dashboards compare against them).
PREDICTION_TYPE = {True: "lead_conversion", False: "customer_lifetime_value"}


class PredictApi(APIView):
    @extend_schema_serializer(component_name="Predict")
    class InputSerializer(serializers.Serializer):
        model_type = ModelTypeField()
        user_id = UserIdField()
        model_name = serializers.CharField(max_length=100, required=False, allow_blank=True, allow_null=True)
        version = serializers.IntegerField(
            min_value=1, max_value=2_147_483_647, required=False, allow_null=True,
            help_text="with model_name: score with this version (default: the model's newest usable version)",
        )
        entity_id = serializers.CharField(max_length=200, required=False, allow_blank=True)
        data = serializers.DictField(allow_empty=False)
        explain = serializers.BooleanField(default=True, help_text="add the record's reasons (default true)")

    @extend_schema_serializer(component_name="PredictResponse")
    class OutputSerializer(serializers.Serializer):
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
        source = serializers.ChoiceField(choices=Prediction.Source.choices)
        score = serializers.IntegerField(allow_null=True, help_text="0-100; null for CLV scored by the rules")
        tier = serializers.ChoiceField(choices=TIERS, allow_null=True)
        warnings = serializers.ListField(child=serializers.CharField())
        reasons = ReasonSerializer(many=True, required=False, help_text="with explain: true (the default)")
        explanation = ExplanationSerializer(required=False, help_text="models only")
        fallback_reason = serializers.CharField(required=False, help_text="why the rules answered (source rules)")

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 403, 404, 413)},
        summary="Score one lead or customer",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tenant_authorize(request, data["user_id"])
        entity_id = data.get("entity_id") or ""
        result = predictions_make(
            tenant=data["user_id"],
            model_type=data["model_type"],
            model_name=data.get("model_name") or None,
            version=data.get("version"),
            records=[data["data"]],
            entity_ids=[entity_id] if entity_id else None,
            explain=data["explain"],
        )
        return Response(single_body(result))


def single_body(result: ScoringResult) -> dict[str, Any]:
    output = result.outputs[0]
    classification = is_classification(result.model_type)
    body = {
        "success": True,
        "prediction_type": PREDICTION_TYPE[classification],
        "conversion_probability": output.get("conversion_probability"),
        "lifetime_value": output.get("lifetime_value"),
        "confidence": output["confidence"],
        "confidence_detail": output["confidence_detail"],
        "prediction_class": output.get("prediction_class"),
        "value_category": output.get("value_category"),
        "feature_importance": result.feature_importance,
        "model_info": result.model_info,
        "error": None,
        "prediction_id": output["prediction_id"],
        "model_version": result.model_version.version if result.model_version else None,
        "source": result.source,
        "score": output.get("score"),
        "tier": output.get("tier"),
        "warnings": output["warnings"],
    }
    body |= _reasons_of(output)
    if result.source == "rules":
        body["fallback_reason"] = result.fallback_reason
    return body


def _reasons_of(output: dict[str, Any]) -> dict[str, Any]:
    """The output's `reasons` and `explanation`, where it has them."""
    return {key: output[key] for key in ("reasons", "explanation") if key in output}


class RecordListField(serializers.ListField):
    """A non-empty list of JSON records, taken as the parser produced them.

    `ListField(child=JSONField())` would re-encode every record with `json.dumps` to prove
    it is JSON, which a parsed JSON body always is (90 ms for 10,000 records); a list
    holding a null, or anything but a plain list, still goes through that check and its
    errors. Records are validated against the model's schema by the service.
    """

    def to_internal_value(self, data: Any) -> Any:
        if type(data) is list and data and None not in data:
            return list(data)
        return super().to_internal_value(data)


class PredictBatchApi(APIView):
    @extend_schema_serializer(component_name="PredictBatch")
    class InputSerializer(serializers.Serializer):
        model_type = ModelTypeField()
        user_id = UserIdField()
        model_name = serializers.CharField(max_length=100, required=False, allow_blank=True, allow_null=True)
        version = serializers.IntegerField(
            min_value=1, max_value=2_147_483_647, required=False, allow_null=True,
            help_text="with model_name: score with this version (default: the model's newest usable version)",
        )
        # Plain JSON list: per-row validation lives in the model's schema check, which names the row.
        data = RecordListField(child=serializers.JSONField(), allow_empty=False)
        explain = serializers.BooleanField(default=False, help_text="add each record's reasons (slower)")

    @extend_schema_serializer(component_name="PredictBatchResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        prediction_type = ModelTypeField()
        total_predictions = serializers.IntegerField()
        predictions = serializers.ListField(child=BatchPredictionField(), help_text="in the order of data")
        model_info = ModelInfoSerializer()
        model_version = serializers.IntegerField(allow_null=True, help_text="null for the rules fallback")
        source = serializers.ChoiceField(choices=Prediction.Source.choices)
        feature_importance = FeatureImportanceSerializer()
        fallback_reason = serializers.CharField(required=False, help_text="why the rules answered (source rules)")

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 403, 404, 413)},
        summary="Score many leads or customers",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tenant_authorize(request, data["user_id"])
        result = predictions_make(
            tenant=data["user_id"],
            model_type=data["model_type"],
            model_name=data.get("model_name") or None,
            version=data.get("version"),
            records=data["data"],
            batch=True,
            explain=data["explain"],
        )
        classification = is_classification(result.model_type)
        predictions = batch_items(result, classification=classification)
        body = {
            "success": True,
            "prediction_type": PREDICTION_TYPE[classification],
            "total_predictions": len(predictions),
            "predictions": predictions,
            "model_info": result.model_info,
            "model_version": result.model_version.version if result.model_version else None,
            "source": result.source,
            "feature_importance": result.feature_importance,
        }
        if result.source == "rules":
            body["fallback_reason"] = result.fallback_reason
        return Response(body)


def batch_items(result: ScoringResult, *, classification: bool) -> list[dict[str, Any]]:
    """Each record's answer, in the original service's item shape."""
    # The original service named rows without an id by their position.
    if classification:
        id_key, value_key, kind_key, unnamed = "lead_id", "conversion_probability", "prediction_class", "lead_"
    else:
        id_key, value_key, kind_key, unnamed = "customer_id", "lifetime_value", "value_category", "customer_"
    return [
        {
            id_key: entity_id or f"{unnamed}{index}",
            value_key: output[value_key],
            "confidence": output["confidence"],
            kind_key: output[kind_key],
            "confidence_detail": output["confidence_detail"],
            "prediction_id": output["prediction_id"],
            "score": output.get("score"),
            "tier": output.get("tier"),
            "source": output["source"],
            "warnings": output["warnings"],
            **_reasons_of(output),
        }
        for index, (entity_id, output) in enumerate(zip(result.entity_ids, result.outputs))
    ]

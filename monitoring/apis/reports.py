"""GET /monitoring/{user_id}/{model_type}: drift, data quality, performance, triggers; GET /insights/{user_id}/{model_type}: the models and predictions at a glance."""
from __future__ import annotations


from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leadml.api.fields import ModelTypeField
from leadml.api.serializers import MODEL_TYPE_PATH_PARAMETER, error_responses
from monitoring.serializers import (
    DataDriftSerializer,
    DataQualitySerializer,
    MonitoredModelSerializer,
    MonitoringWindowSerializer,
    PerformanceSerializer,
    PredictionDriftSerializer,
    TriggerSerializer,
)
from monitoring.apis.queries import tenant_model_query
from monitoring.services.report import monitoring_report, monitoring_version, window_resolve


from monitoring.serializers import MonitoringSummarySerializer
from monitoring.services.report import monitoring_summary
from predictions.insights import insights_get
from predictions.serializers import (
    ActiveModelCardSerializer,
    ImportanceTrendPointSerializer,
    MetricSummarySerializer,
    PredictionPatternsSerializer,
)
from registry.selectors import model_version_get_active


class MonitoringApi(APIView):
    class QuerySerializer(serializers.Serializer):
        model_name = serializers.CharField(max_length=200, required=False)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)
        last = serializers.IntegerField(required=False, min_value=1, max_value=10_000_000)

    @extend_schema_serializer(component_name="MonitoringResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        user_id = serializers.CharField()
        model_type = ModelTypeField()
        model = MonitoredModelSerializer()
        window = MonitoringWindowSerializer()
        data_drift = DataDriftSerializer()
        prediction_drift = PredictionDriftSerializer()
        data_quality = DataQualitySerializer(many=True)
        performance = PerformanceSerializer()
        triggers = TriggerSerializer(many=True)

    @extend_schema(
        parameters=[QuerySerializer, MODEL_TYPE_PATH_PARAMETER],
        responses={200: OutputSerializer, **error_responses(400, 403, 404)},
        summary="Drift, data quality, live and estimated performance, and retraining triggers",
    )
    def get(self, request: Request, user_id: str, model_type: str) -> Response:
        params = tenant_model_query(request, user_id, model_type, self.QuerySerializer)
        version = monitoring_version(tenant=user_id, model_type=model_type, model_name=params.get("model_name"))
        window = window_resolve(
            version=version, since=params.get("since"), until=params.get("until"), last=params.get("last")
        )
        return Response(monitoring_report(version=version, window=window))


class InsightsApi(APIView):
    @extend_schema_serializer(component_name="InsightsResponse")
    class OutputSerializer(serializers.Serializer):
        """The original service's insight fields, the active version's card and its monitoring summary."""

        success = serializers.BooleanField(help_text="false (with error) when the tenant has no model of this type")
        error = serializers.CharField(required=False, help_text="No models available for insights")
        detail = serializers.CharField(required=False, help_text="the same message as error")
        user_id = serializers.CharField()
        model_type = ModelTypeField()
        total_models = serializers.IntegerField()
        model_types = serializers.ListField(
            child=serializers.CharField(), help_text="the original's name: the algorithms of the models, each once"
        )
        model_type_counts = serializers.DictField(child=serializers.IntegerField(), help_text="model type → versions")
        avg_performance = serializers.DictField(
            child=MetricSummarySerializer(), help_text="metric → its summary over the versions"
        )
        feature_importance_trends = serializers.DictField(
            child=serializers.ListField(child=ImportanceTrendPointSerializer()),
            help_text="input column → its weight in each version, oldest first",
        )
        prediction_patterns = PredictionPatternsSerializer()
        active_model = ActiveModelCardSerializer(allow_null=True)
        monitoring = MonitoringSummarySerializer(allow_null=True)

    @extend_schema(
        parameters=[MODEL_TYPE_PATH_PARAMETER],
        responses={200: OutputSerializer, **error_responses(400, 403)},
        summary="A tenant's models and predictions at a glance",
    )
    def get(self, request: Request, user_id: str, model_type: str) -> Response:
        tenant_model_query(request, user_id, model_type)
        body = insights_get(tenant=user_id, model_type=model_type)
        active = model_version_get_active(tenant=user_id, model_type=model_type)
        # Insights carry the active model's drift and quality summaries too.
        body["monitoring"] = monitoring_summary(version=active) if active is not None else None
        return Response(body)

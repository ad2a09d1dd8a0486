"""POST /preprocess: preview what preprocessing makes of a few records (nothing is stored)."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leadml.api.errors import PayloadTooLargeError
from leadml.ml.preprocess import preprocess_records
from leadml.api.records import records_check
from leadml.api.serializers import (
    DroppedColumnSerializer,
    FeatureEngineeringReportSerializer,
    PreprocessingOptionsSerializer,
    QualityReportSerializer,
    error_responses,
)
from training.serializers import (
    FeatureSelectionSerializer,
)


class PreprocessApi(APIView):
    @extend_schema_serializer(component_name="Preprocess")
    class InputSerializer(serializers.Serializer):
        data = serializers.JSONField(help_text="One record (object) or a list of records")
        config = serializers.DictField(required=False, default=dict)

        def validate_data(self, value: Any) -> list[dict[str, Any]]:
            records = [value] if isinstance(value, dict) else value
            if not isinstance(records, list) or not records:
                raise serializers.ValidationError("must be a record (object) or a non-empty list of records")
            if len(records) > settings.LEADML_MAX_BATCH_ROWS:
                raise PayloadTooLargeError(
                    f"{len(records)} records exceed the limit of {settings.LEADML_MAX_BATCH_ROWS}",
                    details={"data": ["too many records"]},
                )
            records_check(records, field="data", indexed=isinstance(value, list))
            return records

    @extend_schema_serializer(component_name="PreprocessResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        processed_data = serializers.ListField(
            child=serializers.DictField(child=serializers.FloatField(allow_null=True)),
            help_text="each record as the model would see it: output column → value",
        )
        quality_report = QualityReportSerializer()
        original_shape = serializers.ListField(child=serializers.IntegerField(), help_text="[rows, columns]")
        processed_shape = serializers.ListField(child=serializers.IntegerField(), help_text="[rows, columns]")
        feature_names = serializers.ListField(child=serializers.CharField())
        preprocessing = PreprocessingOptionsSerializer(help_text="the options in effect, defaults filled in")
        feature_engineering = FeatureEngineeringReportSerializer()
        dropped_columns = DroppedColumnSerializer(many=True)
        feature_selection = FeatureSelectionSerializer(allow_null=True, help_text="with feature_selection and a target")

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 413)},
        summary="Preview preprocessing on records",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = preprocess_records(data["data"], data["config"])
        return Response({"success": True, **result})

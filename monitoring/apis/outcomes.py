"""POST /outcomes: what really happened to scored leads and customers."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leadml.api.errors import PayloadTooLargeError
from leadml.api.fields import ModelTypeField, UserIdField
from leadml.api.serializers import error_responses
from monitoring.serializers import (
    OutcomeRejectionSerializer,
)
from monitoring.services.outcomes import outcomes_record
from leadml.api.authentication import tenant_authorize
from leadml.api.uploads import csv_read


class OutcomesApi(APIView):
    @extend_schema_serializer(component_name="Outcomes")
    class InputSerializer(serializers.Serializer):
        user_id = UserIdField()
        model_type = ModelTypeField()
        outcomes = serializers.ListField(
            child=serializers.JSONField(),
            required=False,
            allow_empty=False,
            help_text="[{entity_id | prediction_id, outcome, observed_at?}, ...]",
        )
        file = serializers.FileField(required=False, help_text="CSV with entity_id / prediction_id, outcome, observed_at")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if ("outcomes" in attrs) == ("file" in attrs):
                raise serializers.ValidationError({"outcomes": ["send either 'outcomes' (JSON) or a CSV 'file'"]})
            return attrs

    @extend_schema_serializer(component_name="OutcomesResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        accepted = serializers.IntegerField(help_text="stored + updated + duplicates")
        stored = serializers.IntegerField()
        updated = serializers.IntegerField(help_text="a different outcome replaced an entity's earlier one")
        duplicates = serializers.IntegerField(help_text="sent before: stored once")
        rejected = OutcomeRejectionSerializer(many=True)
        dataset_id = serializers.UUIDField(allow_null=True, help_text="the dataset the outcomes were appended to")

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 403, 413)},
        summary="Record what happened to scored entities",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tenant_authorize(request, data["user_id"])
        if "file" in data:
            items = csv_read(data["file"])
            limit = settings.LEADML_MAX_UPLOAD_ROWS
        else:
            items = data["outcomes"]
            limit = settings.LEADML_MAX_BATCH_ROWS
        if len(items) > limit:
            raise PayloadTooLargeError(
                f"{len(items)} outcomes exceed the limit of {limit} per call", details={"outcomes": ["too many"]}
            )
        result = outcomes_record(tenant=data["user_id"], model_type=data["model_type"], items=items)
        return Response(result.as_dict())

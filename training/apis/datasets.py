"""POST /datasets and GET /datasets/{id}: upload training data, read its summary and quality report."""
from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leadml.api.errors import PayloadTooLargeError
from leadml.api.fields import ModelTypeField, UserIdField
from leadml.api.serializers import (
    error_responses,
)
from leadml.api.authentication import tenant_authorize, tenant_scope
from training.models import Dataset
from training.presenters import dataset_summary
from training.selectors import dataset_get
from training.serializers import (
    DatasetSerializer,
)
from leadml.api.uploads import csv_read
from training.services.datasets import dataset_create, rows_validate, transactions_dataset_create


TRANSACTION_FIELDS = ("customer_column", "date_column", "amount_column", "calibration_end", "horizon_days")


@extend_schema_field({"type": "array", "items": {"type": "string"}, "description": "JSON list or comma list"})
class PositiveValuesField(serializers.Field):
    """A JSON list, or (from a form) a JSON string or a comma-separated list."""

    def to_internal_value(self, data: Any) -> list[Any]:
        if isinstance(data, list):
            return data
        if isinstance(data, str):
            text = data.strip()
            if text.startswith("["):
                try:
                    parsed = json.loads(text)
                except json.JSONDecodeError as error:
                    raise serializers.ValidationError(f"not valid JSON: {error}") from error
                if isinstance(parsed, list):
                    return parsed
            return [part.strip() for part in text.split(",") if part.strip()]
        raise serializers.ValidationError("must be a list of values or a comma-separated string")

    def to_representation(self, value: Any) -> Any:
        return value


class DatasetCreateApi(APIView):
    @extend_schema_serializer(component_name="DatasetCreate")
    class InputSerializer(serializers.Serializer):
        user_id = UserIdField()
        model_type = ModelTypeField()
        name = serializers.CharField(max_length=200)
        # kind=source datasets are read from an operator's data source, never uploaded.
        kind = serializers.ChoiceField(
            choices=[(value, label) for value, label in Dataset.Kind.choices if value != Dataset.Kind.SOURCE],
            default=Dataset.Kind.RECORDS,
        )
        target = serializers.CharField(max_length=200, required=False)
        positive_values = PositiveValuesField(required=False)
        rows = serializers.ListField(child=serializers.JSONField(), required=False)
        file = serializers.FileField(required=False)
        # kind=transactions: a purchase log turned into one training row per customer.
        customer_column = serializers.CharField(max_length=200, required=False)
        date_column = serializers.CharField(max_length=200, required=False)
        amount_column = serializers.CharField(max_length=200, required=False)
        calibration_end = serializers.DateField(required=False, help_text="YYYY-MM-DD: features as of this day")
        horizon_days = serializers.IntegerField(required=False, min_value=1, max_value=3650)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if ("rows" in attrs) == ("file" in attrs):
                raise serializers.ValidationError({"file": ["send either a CSV 'file' (multipart) or JSON 'rows'"]})
            if attrs["kind"] == Dataset.Kind.TRANSACTIONS:
                if attrs["model_type"] != "customer_lifetime_value":
                    raise serializers.ValidationError(
                        {"kind": ["transactions build lifetime-value data: model_type must be customer_lifetime_value"]}
                    )
                missing = {
                    name: ["required with kind=transactions"]
                    for name in TRANSACTION_FIELDS
                    if attrs.get(name) in (None, "")
                }
                if missing:
                    raise serializers.ValidationError(missing)
                unused = {name: ["not used with kind=transactions"] for name in ("target", "positive_values")
                          if name in attrs}
                if unused:
                    raise serializers.ValidationError(unused)
                named = [attrs["customer_column"], attrs["date_column"], attrs["amount_column"]]
                if len(set(named)) < 3:
                    raise serializers.ValidationError(
                        {"date_column": ["customer_column, date_column and amount_column must name different columns"]}
                    )
            elif not attrs.get("target"):
                raise serializers.ValidationError({"target": ["this field is required"]})
            return attrs

    @extend_schema(
        request=InputSerializer,
        responses={201: DatasetSerializer, **error_responses(400, 403, 413)},
        summary="Upload training data (CSV or JSON rows)",
    )
    def post(self, request: Request) -> Response:
        content_length = int(request.META.get("CONTENT_LENGTH") or 0)
        if content_length > settings.LEADML_MAX_UPLOAD_BYTES:
            raise PayloadTooLargeError(
                f"upload is {content_length} bytes; the limit is {settings.LEADML_MAX_UPLOAD_BYTES} bytes"
            )
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tenant_authorize(request, data["user_id"])
        if "file" in data:
            upload = data["file"]
            rows = csv_read(upload)
            filename = upload.name or ""
        else:
            rows = rows_validate(data["rows"])
            filename = ""
        if data["kind"] == Dataset.Kind.TRANSACTIONS:
            dataset = transactions_dataset_create(
                tenant=data["user_id"],
                name=data["name"],
                rows=rows,
                source_filename=filename,
                **{name: data[name] for name in TRANSACTION_FIELDS},
            )
            return Response(dataset_summary(dataset), status=status.HTTP_201_CREATED)
        dataset = dataset_create(
            tenant=data["user_id"],
            model_type=data["model_type"],
            name=data["name"],
            target=data["target"],
            rows=rows,
            positive_values=data.get("positive_values"),
            source_filename=filename,
        )
        return Response(dataset_summary(dataset), status=status.HTTP_201_CREATED)


class DatasetDetailApi(APIView):
    @extend_schema(
        responses={200: DatasetSerializer, **error_responses(404)},
        summary="A dataset's summary and quality report",
    )
    def get(self, request: Request, dataset_id: str) -> Response:
        dataset = dataset_get(dataset_id=dataset_id, tenant_scope=tenant_scope(request))
        return Response(dataset_summary(dataset))

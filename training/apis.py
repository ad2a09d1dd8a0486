"""Datasets, training and jobs over HTTP: validate, call one service, serialize."""
from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leadml.errors import ApplicationError, PayloadTooLargeError, error_details_flatten
from leadml.fields import ModelTypeField, UserIdField
from leadml.ml.pipeline import ALGORITHM_CHOICES
from leadml.ml.preprocess import preprocess_records
from leadml.records import records_check
from leadml.serializers import (
    DroppedColumnSerializer,
    FeatureEngineeringReportSerializer,
    PreprocessingOptionsSerializer,
    QualityReportSerializer,
    error_responses,
)
from registry.authentication import tenant_authorize, tenant_scope
from registry.presenters import metrics_with_original_names, model_version_metadata
from training.models import Dataset, TrainingJob
from training.selectors import dataset_get, training_job_get
from training.serializers import (
    DatasetSerializer,
    FeatureSelectionSerializer,
    TrainingJobSerializer,
    TrainResultSerializer,
)
from training.services.datasets import csv_read, dataset_create, rows_validate, transactions_dataset_create
from training.services.jobs import training_job_cancel, training_job_create, training_job_wait


TRANSACTION_FIELDS = ("customer_column", "date_column", "amount_column", "calibration_end", "horizon_days")


def dataset_summary(dataset: Dataset) -> dict[str, Any]:
    return {
        "success": True,
        "dataset_id": str(dataset.id),
        "kind": dataset.kind,
        "status": dataset.status,
        "source_config": dataset.source_config,
        "user_id": dataset.tenant,
        "model_type": dataset.model_type,
        "name": dataset.name,
        "target": dataset.target,
        "positive_values": dataset.positive_values,
        "rows": dataset.row_count,
        "labelled_rows": dataset.labelled_row_count,
        "columns": dataset.columns,
        "quality_report": dataset.quality_report,
        "created_at": dataset.created_at.isoformat(),
    }


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


def job_summary(job: TrainingJob) -> dict[str, Any]:
    body: dict[str, Any] = {
        "success": job.status != TrainingJob.Status.FAILED,
        "job_id": str(job.id),
        "status": job.status,
        "user_id": job.tenant,
        "model_type": job.model_type,
        "algorithm": job.algorithm,
        "model_name": job.model_name,
        "progress": {"step": job.progress_step, "percent": job.progress_percent},
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "duration_seconds": job.duration_seconds,
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested,
        "error": job.error or None,
        "log": job.log,
        "model_version": None,
    }
    if job.model_version is not None:
        body["model_version"] = job.model_version.version
        body["result"] = synchronous_result(job)
    return body


def synchronous_result(job: TrainingJob) -> dict[str, Any]:
    """The original service's synchronous `/train` answer."""
    model_version = job.model_version
    assert model_version is not None
    return {
        "success": True,
        "model_path": model_version.artifact_path,
        "metadata": model_version_metadata(model_version),
        "metrics": metrics_with_original_names(model_version.metrics),
        "job_id": str(job.id),
        "status_url": f"/jobs/{job.id}",
        "model_version": model_version.version,
        "status": model_version.status,
    }


class TrainApi(APIView):
    @extend_schema_serializer(component_name="TrainingConfig")
    class TrainingConfigSerializer(serializers.Serializer):
        dataset_id = serializers.UUIDField(required=False)
        source = serializers.CharField(
            required=False,
            max_length=100,
            help_text="the name (or id) of a data source the operator configured: train on the rows it holds for "
            "this user_id, read at training time. Never a URL or SQL. Default: the one source of this model_type "
            "when the user_id uploaded no training data",
        )
        # An empty list means "no restriction", as in the original service.
        features = serializers.ListField(child=serializers.CharField(), required=False, allow_empty=True)
        preprocessing = serializers.DictField(required=False)
        param_grid = serializers.DictField(required=False)
        cv_folds = serializers.IntegerField(required=False, min_value=2, max_value=20)
        test_size = serializers.FloatField(required=False, min_value=0.05, max_value=0.5)
        random_state = serializers.IntegerField(required=False, min_value=0)
        feature_engineering = serializers.DictField(required=False)
        missing_values = serializers.ListField(child=serializers.JSONField(), required=False)
        allow_columns = serializers.ListField(child=serializers.CharField(), required=False)
        calibrate = serializers.BooleanField(required=False)
        time_budget_s = serializers.FloatField(required=False, min_value=1, max_value=86400)
        min_improvement = serializers.FloatField(required=False, min_value=0, max_value=1)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                allowed = ", ".join(self.fields)
                raise serializers.ValidationError(
                    {name: [f"unknown training_config option; allowed: {allowed}"] for name in unknown}
                )
            return attrs

    @extend_schema_serializer(component_name="Train")
    class InputSerializer(serializers.Serializer):
        model_type = ModelTypeField()
        algorithm = serializers.ChoiceField(choices=ALGORITHM_CHOICES, default="gradient_boosting")
        model_name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", max_length=100)
        user_id = UserIdField()
        training_config = serializers.JSONField(required=False, default=dict)

    @extend_schema_serializer(component_name="TrainAcceptedResponse")
    class AcceptedOutputSerializer(TrainingJobSerializer):
        status_url = serializers.CharField(help_text="GET it to follow the job")

    @extend_schema(
        request=InputSerializer,
        parameters=[
            OpenApiParameter(
                "wait", int, description="Wait up to N seconds for the job (default LEADML_TRAIN_WAIT_SECONDS; 0: don't)"
            ),
            OpenApiParameter("async", bool, description="Answer 202 with the job at once (as Prefer: respond-async)"),
            OpenApiParameter(
                "Prefer", str, location=OpenApiParameter.HEADER, description="respond-async: answer 202 at once"
            ),
        ],
        responses={
            200: TrainResultSerializer,
            202: AcceptedOutputSerializer,
            **error_responses(400, 403, 404, 409, 413, 422, 503),
        },
        summary="Train a model (waits for the job and answers in the original shape, or 202 with the job)",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tenant_authorize(request, data["user_id"])
        raw_config = data["training_config"] or {}
        if not isinstance(raw_config, dict):
            raise ApplicationError("training_config must be an object", details={"training_config": ["not an object"]})
        config_serializer = self.TrainingConfigSerializer(data=raw_config)
        if not config_serializer.is_valid():
            details = error_details_flatten(config_serializer.errors, "training_config")
            field, messages = next(iter(details.items()))
            raise ApplicationError(f"{field}: {messages[0]}", details=details)
        training_config = {**raw_config, **{k: v for k, v in config_serializer.validated_data.items()}}
        if "dataset_id" in training_config:
            training_config["dataset_id"] = str(training_config["dataset_id"])
        asynchronous = _wants_async(request)
        wait_seconds = 0 if asynchronous else _wait_param(request)

        job = training_job_create(
            tenant=data["user_id"],
            model_type=data["model_type"],
            algorithm=data["algorithm"],
            model_name=data["model_name"],
            training_config=training_config,
            requested_by=request.user.actor,
        )
        if wait_seconds:
            job = training_job_wait(job=job, seconds=wait_seconds)
            if job.status == TrainingJob.Status.SUCCEEDED:
                return Response(synchronous_result(job), status=status.HTTP_200_OK)
            if job.status in (TrainingJob.Status.FAILED, TrainingJob.Status.CANCELLED):
                raise ApplicationError(
                    f"training {job.status}: {job.error}",
                    details={"job_id": [str(job.id)], "status": [job.status]},
                    status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
                )
        body = job_summary(job)
        body["status_url"] = f"/jobs/{job.id}"
        headers = {"Preference-Applied": "respond-async"} if asynchronous else {}
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)


def _wants_async(request: Request) -> bool:
    """`Prefer: respond-async` (RFC 7240) or `?async=true`: answer 202 with the job at once."""
    preferences = {
        part.split("=", 1)[0].strip().lower()
        for part in request.headers.get("Prefer", "").replace(";", ",").split(",")
    }
    flag = request.query_params.get("async", "").strip().lower()
    if flag not in ("", "true", "false", "1", "0", "yes", "no"):
        raise ApplicationError("async must be true or false", details={"async": ["not a boolean"]})
    return "respond-async" in preferences or flag in ("true", "1", "yes")


def _wait_param(request: Request) -> int:
    """Seconds to wait for the job: `?wait=N`, else the configured default."""
    raw = request.query_params.get("wait")
    if raw in (None, ""):
        return settings.LEADML_TRAIN_WAIT_SECONDS
    try:
        seconds = int(raw)
    except ValueError as error:
        raise ApplicationError("wait must be a whole number of seconds", details={"wait": ["not an integer"]}) from error
    if seconds < 0 or seconds > settings.LEADML_MAX_WAIT_SECONDS:
        raise ApplicationError(
            f"wait must be between 0 and {settings.LEADML_MAX_WAIT_SECONDS} seconds",
            details={"wait": ["out of range"]},
        )
    return seconds


class JobDetailApi(APIView):
    @extend_schema(
        responses={200: TrainingJobSerializer, **error_responses(404)},
        summary="A training job's status, progress, log and result",
    )
    def get(self, request: Request, job_id: str) -> Response:
        job = training_job_get(job_id=job_id, tenant_scope=tenant_scope(request))
        return Response(job_summary(job))


class JobCancelApi(APIView):
    @extend_schema(
        request=None,
        responses={200: TrainingJobSerializer, **error_responses(404, 409)},
        summary="Cancel a queued or running job",
    )
    def post(self, request: Request, job_id: str) -> Response:
        job = training_job_get(job_id=job_id, tenant_scope=tenant_scope(request))
        job = training_job_cancel(job=job)
        return Response(job_summary(job))


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

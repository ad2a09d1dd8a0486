"""Outcomes, monitoring, events, trigger settings, webhooks and manual retrains over HTTP."""
from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leadml.errors import NotFoundError, PayloadTooLargeError
from leadml.fields import ModelTypeField, UserIdField, model_type_path_check
from leadml.serializers import MODEL_TYPE_PATH_PARAMETER, SuccessSerializer, error_responses
from monitoring.models import MonitoringEvent, TenantWebhook
from monitoring.serializers import (
    DataDriftSerializer,
    DataQualitySerializer,
    MonitoredModelSerializer,
    MonitoringEventSerializer,
    MonitoringWindowSerializer,
    OutcomeRejectionSerializer,
    PerformanceSerializer,
    PredictionDriftSerializer,
    TriggerOverridesSerializer,
    TriggerSerializer,
    TriggerSettingsValuesSerializer,
)
from monitoring.services.events import event_payload, webhook_url_refusal
from monitoring.services.outcomes import outcomes_record
from monitoring.services.report import monitoring_report, monitoring_version, window_resolve
from monitoring.services.retrain import retrain_request
from monitoring.services.triggers import TRIGGER_FIELDS, trigger_settings_get, trigger_settings_update
from registry.authentication import tenant_authorize
from registry.selectors import model_versions_for_name
from training.apis import job_summary
from training.serializers import TrainingJobSerializer
from training.services.datasets import csv_read

EVENTS_LIMIT = 500
# The trigger settings' counts are stored as 32-bit integers.
MAX_SETTING = 2_147_483_647


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
        tenant_authorize(request, user_id)
        model_type_path_check(model_type)
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        version = monitoring_version(tenant=user_id, model_type=model_type, model_name=params.get("model_name"))
        window = window_resolve(
            version=version, since=params.get("since"), until=params.get("until"), last=params.get("last")
        )
        return Response(monitoring_report(version=version, window=window))


class MonitoringEventsApi(APIView):
    class QuerySerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=MonitoringEvent.Kind.choices, required=False)
        model_name = serializers.CharField(max_length=200, required=False)
        since = serializers.DateTimeField(required=False)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=EVENTS_LIMIT, default=100)

    @extend_schema_serializer(component_name="MonitoringEventsResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        user_id = serializers.CharField()
        model_type = ModelTypeField()
        events = MonitoringEventSerializer(many=True, help_text="newest first")

    @extend_schema(
        parameters=[QuerySerializer, MODEL_TYPE_PATH_PARAMETER],
        responses={200: OutputSerializer, **error_responses(400, 403)},
        summary="Fired triggers, retrains, promotions",
    )
    def get(self, request: Request, user_id: str, model_type: str) -> Response:
        tenant_authorize(request, user_id)
        model_type_path_check(model_type)
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        events = MonitoringEvent.objects.filter(tenant=user_id, model_type=model_type)
        if "kind" in params:
            events = events.filter(kind=params["kind"])
        if "model_name" in params:
            events = events.filter(model_name=params["model_name"])
        if "since" in params:
            events = events.filter(created_at__gte=params["since"])
        shown = list(events[: params["limit"]])
        return Response(
            {
                "success": True,
                "user_id": user_id,
                "model_type": model_type,
                "events": [
                    event_payload(event) | {"webhook": {"status": event.webhook_status or None, "attempts": event.webhook_attempts}}
                    for event in shown
                ],
            }
        )


class TriggerSettingsApi(APIView):
    @extend_schema_serializer(component_name="TriggerSettings")
    class InputSerializer(serializers.Serializer):
        live_performance_enabled = serializers.BooleanField(required=False, allow_null=True)
        live_performance_margin = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
        live_performance_min_outcomes = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_SETTING)
        estimated_performance_enabled = serializers.BooleanField(required=False, allow_null=True)
        estimated_performance_margin = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
        estimated_performance_min_predictions = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_SETTING)
        data_drift_enabled = serializers.BooleanField(required=False, allow_null=True)
        data_drift_min_predictions = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_SETTING)
        new_rows_enabled = serializers.BooleanField(required=False, allow_null=True)
        new_rows_min = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_SETTING)
        max_age_enabled = serializers.BooleanField(required=False, allow_null=True)
        max_age_days = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_SETTING)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: [f"unknown trigger setting; allowed: {', '.join(TRIGGER_FIELDS)}"] for name in unknown}
                )
            return attrs

    @extend_schema_serializer(component_name="TriggerSettingsResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        effective = TriggerSettingsValuesSerializer(help_text="defaults with the overrides applied")
        overrides = TriggerOverridesSerializer()
        defaults = TriggerSettingsValuesSerializer()

    @extend_schema(
        parameters=[MODEL_TYPE_PATH_PARAMETER],
        responses={200: OutputSerializer, **error_responses(400, 403)},
        summary="A tenant's retraining trigger settings (defaults and overrides)",
    )
    def get(self, request: Request, user_id: str, model_type: str) -> Response:
        tenant_authorize(request, user_id)
        model_type_path_check(model_type)
        return Response({"success": True, **trigger_settings_get(tenant=user_id, model_type=model_type)})

    @extend_schema(
        request=InputSerializer,
        parameters=[MODEL_TYPE_PATH_PARAMETER],
        responses={200: OutputSerializer, **error_responses(400, 403, 413)},
        summary="Override trigger settings (null resets one to the default)",
    )
    def put(self, request: Request, user_id: str, model_type: str) -> Response:
        tenant_authorize(request, user_id)
        model_type_path_check(model_type)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = trigger_settings_update(tenant=user_id, model_type=model_type, changes=dict(serializer.validated_data))
        return Response({"success": True, **changes})

    patch = put


class WebhookApi(APIView):
    @extend_schema_serializer(component_name="Webhook")
    class InputSerializer(serializers.Serializer):
        url = serializers.URLField(max_length=500)
        secret = serializers.CharField(min_length=16, max_length=200, required=False)
        enabled = serializers.BooleanField(default=True)

        def validate_url(self, url: str) -> str:
            refusal = webhook_url_refusal(url, resolve=False)
            if refusal is not None:
                raise serializers.ValidationError(f"webhook URL refused: {refusal}")
            return url

    @extend_schema_serializer(component_name="WebhookResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        url = serializers.URLField()
        enabled = serializers.BooleanField()

    @extend_schema_serializer(component_name="WebhookCreatedResponse")
    class CreatedOutputSerializer(OutputSerializer):
        secret = serializers.CharField(help_text="signs every delivery; shown this once")

    @extend_schema(
        responses={200: OutputSerializer, **error_responses(403, 404)},
        summary="The tenant's event webhook (the secret is never shown again)",
    )
    def get(self, request: Request, user_id: str) -> Response:
        tenant_authorize(request, user_id)
        webhook = TenantWebhook.objects.filter(tenant=user_id).first()
        if webhook is None:
            raise NotFoundError(f"user_id '{user_id}' has no webhook")
        return Response({"success": True, "url": webhook.url, "enabled": webhook.enabled})

    @extend_schema(
        request=InputSerializer,
        responses={200: CreatedOutputSerializer, **error_responses(400, 403, 413)},
        summary="Set the tenant's event webhook",
    )
    def put(self, request: Request, user_id: str) -> Response:
        tenant_authorize(request, user_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        secret = data.get("secret") or secrets.token_urlsafe(32)
        TenantWebhook.objects.update_or_create(
            tenant=user_id, defaults={"url": data["url"], "secret": secret, "enabled": data["enabled"]}
        )
        # The secret is shown once, like an API token's key.
        return Response({"success": True, "url": data["url"], "enabled": data["enabled"], "secret": secret})

    @extend_schema(
        responses={200: SuccessSerializer, **error_responses(403, 404)},
        summary="Remove the tenant's event webhook",
    )
    def delete(self, request: Request, user_id: str) -> Response:
        tenant_authorize(request, user_id)
        deleted, _ = TenantWebhook.objects.filter(tenant=user_id).delete()
        if not deleted:
            raise NotFoundError(f"user_id '{user_id}' has no webhook")
        return Response({"success": True})


class ModelRetrainApi(APIView):
    @extend_schema_serializer(component_name="ModelRetrain")
    class InputSerializer(serializers.Serializer):
        version = serializers.IntegerField(min_value=1, required=False, help_text="default: the active version, else the latest")
        reason = serializers.CharField(max_length=1000, required=False, default="requested through the API")

    @extend_schema_serializer(component_name="ModelRetrainResponse")
    class OutputSerializer(TrainingJobSerializer):
        retrain_of = serializers.IntegerField(help_text="the version retrained")
        status_url = serializers.CharField(help_text="GET it to follow the job")

    @extend_schema(
        request=InputSerializer,
        parameters=[OpenApiParameter("user_id", str, location=OpenApiParameter.PATH)],
        responses={202: OutputSerializer, **error_responses(400, 403, 404, 409, 413, 503)},
        summary="Retrain a model now with its own algorithm and configuration",
    )
    def post(self, request: Request, user_id: str, model_name: str) -> Response:
        tenant_authorize(request, user_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        versions = model_versions_for_name(tenant=user_id, name=model_name)
        wanted = serializer.validated_data.get("version")
        if wanted is None:
            chosen = next((v for v in versions if v.status == v.Status.ACTIVE), versions[0])
        else:
            chosen = next((v for v in versions if v.version == wanted), None)
            if chosen is None:
                raise NotFoundError(f"model '{model_name}' has no version {wanted}")
        decision = retrain_request(version=chosen, actor=request.user.actor, reason=serializer.validated_data["reason"])
        assert decision.job is not None
        body = job_summary(decision.job) | {"retrain_of": chosen.version, "status_url": f"/jobs/{decision.job.id}"}
        return Response(body, status=status.HTTP_202_ACCEPTED)

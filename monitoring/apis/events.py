"""Events, trigger settings and the webhook of a tenant: GET .../events, GET/PUT .../triggers, GET/PUT/DELETE .../webhook."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leadml.api.errors import NotFoundError
from leadml.api.fields import ModelTypeField
from leadml.api.serializers import MODEL_TYPE_PATH_PARAMETER, SuccessSerializer, error_responses
from monitoring.apis.queries import tenant_model_query
from monitoring.models import MonitoringEvent
from monitoring.serializers import (
    MonitoringEventSerializer,
    TriggerOverridesSerializer,
    TriggerSettingsValuesSerializer,
)
from monitoring.services.events import (
    event_with_delivery,
    monitoring_events_list,
    webhook_delete,
    webhook_get,
    webhook_set,
    webhook_url_refusal,
)
from monitoring.services.triggers import TRIGGER_FIELDS, trigger_settings_get, trigger_settings_update
from leadml.api.authentication import tenant_authorize


EVENTS_LIMIT = 500
# The trigger settings' counts are stored as 32-bit integers.
MAX_SETTING = 2_147_483_647


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
        params = tenant_model_query(request, user_id, model_type, self.QuerySerializer)
        shown = monitoring_events_list(
            tenant=user_id,
            model_type=model_type,
            limit=params["limit"],
            kind=params.get("kind"),
            model_name=params.get("model_name"),
            since=params.get("since"),
        )
        return Response(
            {
                "success": True,
                "user_id": user_id,
                "model_type": model_type,
                "events": [event_with_delivery(event) for event in shown],
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
        tenant_model_query(request, user_id, model_type)
        return Response({"success": True, **trigger_settings_get(tenant=user_id, model_type=model_type)})

    @extend_schema(
        request=InputSerializer,
        parameters=[MODEL_TYPE_PATH_PARAMETER],
        responses={200: OutputSerializer, **error_responses(400, 403, 413)},
        summary="Override trigger settings (null resets one to the default)",
    )
    def put(self, request: Request, user_id: str, model_type: str) -> Response:
        tenant_model_query(request, user_id, model_type)
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
        webhook = webhook_get(tenant=user_id)
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
        webhook, secret = webhook_set(tenant=user_id, url=data["url"], enabled=data["enabled"], secret=data.get("secret"))
        # The secret is shown once, like an API token's key.
        return Response({"success": True, "url": webhook.url, "enabled": webhook.enabled, "secret": secret})

    @extend_schema(
        responses={200: SuccessSerializer, **error_responses(403, 404)},
        summary="Remove the tenant's event webhook",
    )
    def delete(self, request: Request, user_id: str) -> Response:
        tenant_authorize(request, user_id)
        if not webhook_delete(tenant=user_id):
            raise NotFoundError(f"user_id '{user_id}' has no webhook")
        return Response({"success": True})

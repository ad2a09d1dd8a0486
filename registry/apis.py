"""Model listing, deletion and activation over HTTP."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leadml.api.serializers import error_responses
from leadml.api.authentication import tenant_authorize
from registry.cache import bundle_forget
from registry.presenters import model_version_summary, promotion_event_summary
from registry.selectors import model_version_list, model_version_list_named, promotion_history
from registry.serializers import ModelVersionSummarySerializer, PromotionEventSerializer
from registry.services import model_version_activate, model_versions_delete


class ModelListApi(APIView):
    @extend_schema_serializer(component_name="ModelListResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        user_id = serializers.CharField()
        total_models = serializers.IntegerField(help_text="versions, of every model")
        models = ModelVersionSummarySerializer(many=True)
        promotion_history = serializers.DictField(
            child=PromotionEventSerializer(many=True),
            help_text="model type → its latest 50 changes of the active version",
        )

    @extend_schema(
        responses={200: OutputSerializer, **error_responses(403)},
        summary="Every model version of a tenant",
    )
    def get(self, request: Request, user_id: str) -> Response:
        tenant_authorize(request, user_id)
        versions = list(model_version_list(tenant=user_id))
        models = [model_version_summary(version) for version in versions]
        history = {
            model_type: [
                promotion_event_summary(event) for event in promotion_history(tenant=user_id, model_type=model_type)[:50]
            ]
            for model_type in sorted({version.model_type for version in versions})
        }
        return Response(
            {
                "success": True,
                "user_id": user_id,
                "total_models": len(models),
                "models": models,
                "promotion_history": history,
            }
        )


class ModelDeleteApi(APIView):
    @extend_schema_serializer(component_name="ModelDeleteResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        deleted_versions = serializers.ListField(child=serializers.IntegerField())
        deleted = serializers.IntegerField(help_text="how many versions were deleted")

    class QuerySerializer(serializers.Serializer):
        force = serializers.BooleanField(default=False, help_text="Also delete the active version")
        version = serializers.IntegerField(
            min_value=1, max_value=2_147_483_647, required=False, help_text="Delete only this version"
        )

    @extend_schema(
        parameters=[QuerySerializer],
        responses={200: OutputSerializer, **error_responses(400, 403, 404, 409)},
        summary="Delete a model (all versions, or one)",
    )
    def delete(self, request: Request, user_id: str, model_name: str) -> Response:
        tenant_authorize(request, user_id)
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        versions = model_version_list_named(tenant=user_id, name=model_name, version=query.validated_data.get("version"))
        force = query.validated_data["force"]
        deleted = model_versions_delete(versions=versions, force=force)
        for version in versions:
            bundle_forget(version.pk)
        return Response({"success": True, "deleted_versions": [v.version for v in versions], "deleted": deleted})


class ModelActivateApi(APIView):
    @extend_schema_serializer(component_name="ModelActivate")
    class InputSerializer(serializers.Serializer):
        version = serializers.IntegerField(min_value=1, required=False)
        reason = serializers.CharField(max_length=1000)

    @extend_schema_serializer(component_name="ModelActivateResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField()
        model = ModelVersionSummarySerializer(help_text="the version now active")
        promotion_history = PromotionEventSerializer(many=True, help_text="the model type's latest 20 changes")

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 403, 404, 409, 413)},
        summary="Activate or roll back to a version",
    )
    def post(self, request: Request, user_id: str, model_name: str) -> Response:
        tenant_authorize(request, user_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # The newest version, or the numbered one.
        chosen = model_version_list_named(tenant=user_id, name=model_name, version=serializer.validated_data.get("version"))[0]
        model_version_activate(model_version=chosen, actor=request.user.actor, reason=serializer.validated_data["reason"])
        chosen.refresh_from_db()
        history = promotion_history(tenant=user_id, model_type=chosen.model_type)[:20]
        return Response(
            {
                "success": True,
                "model": model_version_summary(chosen),
                "promotion_history": [promotion_event_summary(event) for event in history],
            }
        )

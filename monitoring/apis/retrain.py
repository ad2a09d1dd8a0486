"""POST /models/{user_id}/{model_name}/retrain: retrain a model now with its own algorithm and configuration."""
from __future__ import annotations


from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leadml.api.serializers import error_responses
from monitoring.services.retrain import retrain_request
from leadml.api.authentication import tenant_authorize
from registry.selectors import model_version_list_named
from training.presenters import job_summary
from training.serializers import TrainingJobSerializer


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
        versions = model_version_list_named(tenant=user_id, name=model_name, version=serializer.validated_data.get("version"))
        # The numbered version; without a number, the active one, else the newest.
        chosen = next((v for v in versions if v.status == v.Status.ACTIVE), versions[0])
        decision = retrain_request(version=chosen, actor=request.user.actor, reason=serializer.validated_data["reason"])
        assert decision.job is not None
        body = job_summary(decision.job) | {"retrain_of": chosen.version, "status_url": f"/jobs/{decision.job.id}"}
        return Response(body, status=status.HTTP_202_ACCEPTED)

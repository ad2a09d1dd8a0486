"""POST /train, GET /jobs/{id}, POST /jobs/{id}/cancel: train a model and follow the job."""
from __future__ import annotations


from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leadml.api.errors import ApplicationError
from leadml.api.fields import ModelTypeField, UserIdField
from leadml.ml.pipeline import ALGORITHM_CHOICES
from leadml.api.serializers import (
    error_responses,
)
from leadml.api.authentication import tenant_authorize, tenant_scope
from training.config import TrainingConfigSerializer, job_config_parse
from training.models import TrainingJob
from training.presenters import job_summary, synchronous_result
from training.selectors import training_job_get
from training.serializers import (
    TrainingJobSerializer,
    TrainResultSerializer,
)
from training.services.jobs import training_job_cancel, training_job_create, training_job_wait


@extend_schema_field(TrainingConfigSerializer)
class TrainingConfigField(serializers.JSONField):
    """Any JSON here; `job_config_parse` checks it, naming fields as the original service did."""


class TrainApi(APIView):
    @extend_schema_serializer(component_name="Train")
    class InputSerializer(serializers.Serializer):
        model_type = ModelTypeField()
        algorithm = serializers.ChoiceField(choices=ALGORITHM_CHOICES, default="gradient_boosting")
        model_name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", max_length=100)
        user_id = UserIdField()
        training_config = TrainingConfigField(required=False, default=dict)

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
        training_config = job_config_parse(data["training_config"])
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

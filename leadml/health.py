"""`GET /health`: database, job queue, model storage and models.

`status` is `healthy` (200), `degraded` (200: still serving; a queue down, a broken
version, an artifact this process could not load, a data source's outcome sync failing) or `unhealthy` (503: the database or
the model storage is down, route elsewhere).
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

import leadml
from leadml.api.serializers import HealthSerializer, error_responses


def _check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any failure to reach the database is "down", whatever the driver
        return {"status": "down", "error": error.__class__.__name__}
    return {"status": "up", "vendor": connection.vendor}


def _check_job_queue() -> dict[str, Any]:
    if settings.Q_CLUSTER.get("sync"):
        return {"status": "up", "broker": "inline"}
    try:
        from django_q.brokers import get_broker

        broker = get_broker()
        if not broker.ping():
            return {"status": "down", "broker": broker.__class__.__name__}
        queued = broker.queue_size()
    except Exception as error:  # a broken broker must show up here, not as a 500
        return {"status": "down", "error": error.__class__.__name__}
    return {"status": "up", "broker": "redis" if settings.REDIS_URL else "orm", "queued_tasks": queued}


def _check_model_storage() -> dict[str, Any]:
    model_dir = settings.STORAGES["models"]["OPTIONS"]["location"]
    try:
        from pathlib import Path

        path = Path(model_dir)
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".health-probe"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        return {"status": "down", "error": error.__class__.__name__}
    return {"status": "up"}


def _models() -> dict[str, Any]:
    """Versions broken for everyone (the database says so) and artifacts this process could not load."""
    from registry.cache import artifact_faults
    from registry.models import ModelVersion

    faults = len(artifact_faults())
    try:
        broken = ModelVersion.objects.filter(status=ModelVersion.Status.BROKEN).count()
    except Exception:  # database down: already reported by the database check
        return {"status": "unknown", "artifact_faults": faults}
    return {"status": "degraded" if broken or faults else "up", "broken_versions": broken, "artifact_faults": faults}


def _data_sources() -> dict[str, Any]:
    """The operator's data sources (README, "Training from the CRM's database"): a failed outcome sync degrades.

    Names only: /health answers anyone, so no URL, host or error text.
    """
    from training.models import DataSource

    try:
        enabled = list(DataSource.objects.filter(enabled=True).values_list("name", "last_sync_status"))
    except Exception:  # database down: already reported by the database check
        return {"status": "unknown"}
    failed = sorted(name for name, status in enabled if status == DataSource.SyncStatus.FAILED)
    return {"status": "degraded" if failed else "up", "configured": len(enabled), "failed": failed}


# Without these a process cannot serve: a load balancer should route elsewhere (503).
# The others only degrade it (200): a queue that is down stops training, not scoring;
# a model this host cannot load is served by an older version or the rules.
ESSENTIAL = ("database", "model_storage")


class HealthApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type] = []

    @extend_schema(
        responses={
            200: HealthSerializer,
            503: OpenApiResponse(HealthSerializer, description="Unhealthy: the database or model storage is down"),
            **error_responses(authenticated=False),
        },
        summary="Service health",
    )
    def get(self, request: Request) -> Response:
        services = {
            "database": _check_database(),
            "job_queue": _check_job_queue(),
            "model_storage": _check_model_storage(),
        }
        database_up = services["database"]["status"] == "up"
        services["models"] = _models() if database_up else {"status": "unknown"}
        services["data_sources"] = _data_sources() if database_up else {"status": "unknown"}
        unhealthy = any(services[name]["status"] != "up" for name in ESSENTIAL)
        degraded = any(service["status"] != "up" for service in services.values())
        body = {
            "status": "unhealthy" if unhealthy else "degraded" if degraded else "healthy",
            "timestamp": timezone.now().isoformat(),
            "version": leadml.__version__,
            # The original service's shape: one word per service. The details are in `checks`.
            # data_sources appears there once the operator configured one.
            "services": {
                name: "available" if service["status"] == "up" else "unavailable"
                for name, service in services.items()
                if name != "data_sources" or service.get("configured")
            },
            "checks": services,
        }
        return Response(body, status=503 if unhealthy else 200)

"""`/bench/floor`: what any authenticated request costs here, for `manage.py bench` to compare with.

The view goes through everything `/predict` goes through before the model: gunicorn,
the middleware, token authentication, the per-token throttle, the JSON parser (a POST's
body is read) and the renderer. It answers a constant JSON and touches no model and
writes nothing, so `/predict` over the floor is the cost of scoring and storing alone
(README, "Benchmark").

It exists only where `LEADML_BENCH_FLOOR` is on: the bench sets it in the environment
of the server it starts. Everywhere else the path is not routed at all (404), and the
view is never in the OpenAPI schema, since it is no part of the API the CRM uses.
"""
from __future__ import annotations

from django.conf import settings
from django.urls import URLPattern, path
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

FLOOR_PATH = "bench/floor"
FLOOR_ANSWER = {"success": True, "floor": True}


@extend_schema(exclude=True)
class BenchFloorApi(APIView):
    """The project's default authentication, permission and throttle classes, and no work."""

    def get(self, request: Request) -> Response:
        return Response(FLOOR_ANSWER)

    def post(self, request: Request) -> Response:
        # Parsed as /predict's body is, so that the floor includes reading the JSON.
        request.data  # noqa: B018
        return Response(FLOOR_ANSWER)


def floor_urlpatterns() -> list[URLPattern]:
    """The floor's route when LEADML_BENCH_FLOOR is on, else none."""
    if not settings.LEADML_BENCH_FLOOR:
        return []
    return [path(FLOOR_PATH, BenchFloorApi.as_view(), name="bench-floor")]

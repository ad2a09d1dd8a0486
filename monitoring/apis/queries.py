"""What every tenant-and-model-type monitoring view checks first, in one place.

The order is the API's contract: a token naming another tenant is refused (403) before
an unknown model type (400), and both before the query parameters are read (400), so
the same request gets the same error from every view.
"""
from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

from leadml.api.authentication import tenant_authorize
from leadml.api.fields import model_type_path_check


def tenant_model_query(
    request: Request,
    user_id: str,
    model_type: str,
    query_serializer: type[serializers.Serializer] | None = None,
) -> dict[str, Any]:
    """Authorize the tenant, check the `{model_type}` path segment, then validate the query
    string with `query_serializer` and return its values (empty without one)."""
    tenant_authorize(request, user_id)
    model_type_path_check(model_type)
    if query_serializer is None:
        return {}
    query = query_serializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    params: dict[str, Any] = query.validated_data
    return params

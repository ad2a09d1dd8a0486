"""Teach drf-spectacular how our API tokens authenticate (for the OpenAPI document)."""
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "leadml.api.authentication.BearerTokenAuthentication"
    match_subclasses = True
    name = "ApiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>` (or `Token <key>`)"}

"""The OpenAPI document the contract tests check answers and the TypeScript client against."""
from __future__ import annotations

import json
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer


def openapi_document() -> dict[str, Any]:
    """Return the schema `/api/schema/` serves, generated in-process, as plain JSON types."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(schema))


@pytest.fixture(scope="session")
def openapi() -> dict[str, Any]:
    return openapi_document()

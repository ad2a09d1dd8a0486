"""Refuse URLs the database cannot hold before any view queries with them."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from leadml.api.errors import error_body

NUL = "\x00"


class RefuseNulInUrlMiddleware:
    """A NUL character in a path parameter or a query parameter is a 400 naming it.

    `%00` decodes to a NUL, which PostgreSQL text cannot store or compare: every query
    with it failed as a 500. Bodies are checked by the JSON parser and the serializers.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        for name, value in kwargs.items():
            if isinstance(value, str) and NUL in value:
                return _refused(name, "path parameter")
        for name, values in request.GET.lists():
            if NUL in name or any(NUL in value for value in values):
                return _refused(name.replace(NUL, "\\0"), "query parameter")
        return None


def _refused(name: str, where: str) -> JsonResponse:
    message = f"{where} '{name}' contains a NUL character"
    return JsonResponse(error_body(message, {name: ["NUL character"]}), status=400)

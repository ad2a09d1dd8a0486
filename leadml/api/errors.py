"""One error type for services and one DRF exception handler for every error.

Every error leaves the API as
`{"success": false, "error": "<message>", "detail": "<message>", "details": {...}}` with a
4xx/5xx status; views never build error JSON by hand. `detail` repeats `error` because
the CRM's FastAPI-era client reads `detail` (FastAPI's own error key).
"""
from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.views.defaults import page_not_found
from leadml.ml.errors import ConfigError, DataError, InputError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)
# What a 503 asks the caller to wait: a database restart takes seconds.
RETRY_AFTER_SECONDS = 5


class ApplicationError(Exception):
    """A failure the client can act on: bad input, a missing resource, a conflict."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    # Response headers the answer carries besides the one error body (Retry-After).
    headers: dict[str, str] = {}

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if status_code is not None:
            self.status_code = status_code


class NotFoundError(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND


class PayloadTooLargeError(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class ConflictError(ApplicationError):
    status_code = status.HTTP_409_CONFLICT


class ServiceUnavailableError(ApplicationError):
    """A dependency (the database, the job queue) cannot be reached for now: 503 with Retry-After."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE

    def __init__(
        self, message: str, *, retry_after_seconds: int = RETRY_AFTER_SECONDS, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.headers = {"Retry-After": str(retry_after_seconds)}


def error_body(message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"success": False, "error": message, "detail": message, "details": details or {}}


def error_details_flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn a DRF error tree into `{field path: [messages]}`: `{"features": {0: [...]}}` → `features[0]`."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            elif prefix and key not in ("non_field_errors",):
                path = f"{prefix}.{key}"
            else:
                path = prefix or str(key)
            flat |= error_details_flatten(value, path)
        return flat
    if isinstance(detail, list) and any(isinstance(item, (dict, list)) for item in detail):
        flat = {}
        for index, item in enumerate(detail):
            flat |= error_details_flatten(item, f"{prefix}[{index}]")
        return flat
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix or "non_field_errors": [str(message) for message in messages]}


def _first_message(detail: Any) -> str:
    """Return a readable one-line summary of a DRF error detail tree."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            inner = _first_message(value)
            if field in ("non_field_errors", "detail"):
                return inner
            return f"{field}: {inner}"
        return "Invalid input."
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else "Invalid input."
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Turn any exception raised in a view into the one error shape."""
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.message, exc.details), status=exc.status_code, headers=exc.headers or None)
    if isinstance(exc, (ConfigError, DataError, InputError)):
        # The ML core refusing a request's data or options: the caller's to fix.
        return Response(error_body(exc.message, {exc.field or "non_field_errors": [exc.message]}), status=400)
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database is down, restarting or locked: the caller should retry, not give up.
        logger.warning("database_unavailable view=%s error=%s", context.get("view").__class__.__name__, exc)
        return Response(
            error_body("The database is unavailable; retry shortly.", {"database": [exc.__class__.__name__]}),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, RecursionError):
        # Input nested deeper than anything here walks (the parser stops most of it first).
        return Response(error_body("the request is nested too deeply to process", {"body": ["nested too deep"]}), status=400)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body(f"Request body too large: {exc}"),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, DjangoValidationError):
        details = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(error_body(_first_message(details), details), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)

    response = drf_exception_handler(exc, context)
    if response is None:
        # Unexpected: log with the traceback, answer without leaking internals.
        logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
        return Response(
            error_body("Internal server error."), status=status.HTTP_500_INTERNAL_SERVER_ERROR
        )

    if isinstance(exc, exceptions.ValidationError):
        details = error_details_flatten(exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail})
        response.data = error_body(_first_message(details), details)
    else:
        detail = response.data.get("detail", response.data) if isinstance(response.data, dict) else response.data
        response.data = error_body(str(detail))
    return response


def path_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 for a path no route matches, in the API's error shape (the admin keeps its page).

    A path with a trailing slash the API's routes do not have (`/predict/`) says which
    path was meant.
    """
    if request.path.startswith("/admin/"):
        return page_not_found(request, exception)
    message = f"no such path: {request.path}"
    trimmed = request.path.rstrip("/")
    if trimmed != request.path and trimmed:
        try:
            resolve(trimmed)
        except Resolver404:
            pass
        else:
            message += f" (the API's paths have no trailing slash: {trimmed})"
    return JsonResponse(error_body(message, {"path": ["not found"]}), status=404)

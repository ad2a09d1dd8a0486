"""Request bodies sent with `Transfer-Encoding: chunked`, as gunicorn hands them to the app (leadml/wsgi.py)."""
from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler

from leadml.api.serving import chunked_bodies_read
from registry.models import ModelVersion
from tests.conftest import lead_request

LEAD = {"email": "jane@acme-analytics.com", "job_title": "VP Sales", "lead_score": 70, "engagement_score": 60}


def call(application: Any, body: bytes, key: str, **environ: Any) -> tuple[str, dict[str, Any]]:
    """POST /predict through the WSGI app the way gunicorn does: the chunks decoded, no Content-Length."""
    base = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/predict", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8001",
        "HTTP_HOST": "127.0.0.1", "wsgi.url_scheme": "http", "CONTENT_TYPE": "application/json",
        "HTTP_AUTHORIZATION": f"Bearer {key}", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True,
        "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
    }
    answered: dict[str, str] = {}
    chunks = application(base | environ, lambda status, headers, exc_info=None: answered.update(status=status))
    return answered["status"], json.loads(b"".join(chunks))


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_is_read(lead_model: ModelVersion, tenant_key: str) -> None:
    body = json.dumps(lead_request(LEAD)).encode()
    status, answer = call(chunked_bodies_read(WSGIHandler()), body, tenant_key)
    assert status.startswith("200"), answer
    assert answer["success"] is True and answer["source"] == "model"
    # Without the wrapper Django read zero bytes: the fields were "required".
    status, answer = call(WSGIHandler(), body, tenant_key)
    assert status.startswith("400") and "model_type" in answer["details"]


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_over_the_limit_is_a_413(lead_model: ModelVersion, tenant_key: str, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    body = json.dumps(lead_request(LEAD | {"note": "x" * 500})).encode()
    status, answer = call(chunked_bodies_read(WSGIHandler()), body, tenant_key)
    assert status.startswith("413"), answer
    assert answer["success"] is False


@pytest.mark.django_db(transaction=True)
def test_a_body_with_a_length_is_left_alone(lead_model: ModelVersion, tenant_key: str) -> None:
    body = json.dumps(lead_request(LEAD)).encode()
    status, answer = call(
        chunked_bodies_read(WSGIHandler()), body + b"   trailing bytes past the length", tenant_key,
        HTTP_TRANSFER_ENCODING="", CONTENT_LENGTH=str(len(body)),
    )
    assert status.startswith("200"), answer

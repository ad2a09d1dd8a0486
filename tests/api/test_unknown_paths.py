"""Paths no route matches answer in the API's error shape (the CRM parses every answer as JSON)."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient


@pytest.mark.parametrize(
    ("path", "hint"),
    [("/predictt", None), ("/predict/", "/predict"), ("/models/demo/", "/models/demo"), ("/no/such/thing/", None)],
)
def test_an_unknown_path_is_a_json_404(api: APIClient, path: str, hint: str | None) -> None:
    response = api.post(path, {}, format="json")
    assert response.status_code == 404
    body = response.json()
    assert body["success"] is False and body["details"] == {"path": ["not found"]}
    assert path in body["error"]
    assert (f"no trailing slash: {hint}" in body["error"]) == (hint is not None)


def test_the_admin_keeps_its_own_404_page(admin_client) -> None:  # type: ignore[no-untyped-def]
    response = admin_client.get("/admin/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")

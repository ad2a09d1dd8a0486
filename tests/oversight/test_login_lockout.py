"""The admin login locks a user out, from one address, after repeated wrong passwords."""
from __future__ import annotations

from typing import Any

from django.test import Client


def _login(client: Client, password: str, address: str = "203.0.113.7") -> Any:
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": "admin", "password": password},
        REMOTE_ADDR=address,
    )


def test_five_wrong_passwords_lock_the_user_out_even_with_the_right_one(superuser: Any) -> None:
    client = Client()
    for _ in range(4):
        assert _login(client, "guess").status_code == 200  # the form again, with an error
    assert _login(client, "guess").status_code == 429  # the fifth locks out
    assert _login(client, "a-long-admin-password").status_code == 429
    assert "_auth_user_id" not in client.session
    # Another address is not locked by this one's failures.
    other = Client()
    response = _login(other, "a-long-admin-password", address="198.51.100.9")
    assert response.status_code == 302 and other.session["_auth_user_id"] == str(superuser.pk)


def test_a_right_password_before_the_limit_resets_the_count(superuser: Any) -> None:
    client = Client()
    for _ in range(4):
        _login(client, "guess")
    assert _login(client, "a-long-admin-password").status_code == 302
    client.logout()
    for _ in range(4):
        assert _login(client, "guess").status_code == 200


def test_static_files_are_served_with_debug_off(client: Client, settings: Any) -> None:
    assert settings.DEBUG is False
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200 and b"".join(response.streaming_content)
    assert client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200

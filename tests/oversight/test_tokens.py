"""API tokens in the admin: created with the key shown once, only its hash stored, revoked."""
from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from rest_framework.test import APIClient

from registry.tokens import hash_key
from registry.models import ApiToken
from tests.oversight.conftest import messages_of
from tests.conftest import TENANT

pytestmark = pytest.mark.django_db
ADD = "/admin/registry/apitoken/add/"
CHANGELIST = "/admin/registry/apitoken/"
NEW_KEY = re.compile(r'<code class="leadml-new-key">([^<]+)</code>')


def _create(console: Client, **fields: str) -> tuple[ApiToken, str]:
    response = console.post(ADD, {"name": "crm backend", **fields}, follow=True)
    assert response.status_code == 200
    [key] = NEW_KEY.findall(response.content.decode())
    return ApiToken.objects.get(key_hash=hash_key(key)), key


def test_add_form_creates_a_token_whose_key_is_shown_once_and_authenticates(
    console: Client, client_for: Callable[[str | None], APIClient]
) -> None:
    response = console.post(ADD, {"name": "crm backend", "tenant": TENANT}, follow=True)

    assert response.status_code == 200
    html = response.content.decode()
    [key] = NEW_KEY.findall(html)
    assert key.startswith("lml_") and html.count(key) == 1
    success = [text for level, text in messages_of(response) if level == "success"]
    assert any(key in text and "not shown again" in text for text in success)
    token = ApiToken.objects.get()
    assert (token.name, token.tenant, token.is_service, token.revoked_at) == ("crm backend", TENANT, False, None)
    # Only the hash (and a recognisable prefix) is stored; nothing else holds the key.
    assert token.key_hash == hash_key(key) and key.startswith(token.key_prefix) and len(token.key_prefix) < len(key)
    stored = [str(value) for value in ApiToken.objects.values().get().values()]
    assert not any(key in value for value in stored)
    assert not any(key in entry.object_repr or key in entry.change_message for entry in LogEntry.objects.all())

    assert client_for(key).get(f"/models/{TENANT}").status_code == 200
    assert key not in console.get(CHANGELIST).content.decode()
    assert key not in console.get(f"/admin/registry/apitoken/{token.pk}/change/").content.decode()


def test_a_service_token_made_in_the_admin_reaches_any_tenant(
    console: Client, client_for: Callable[[str | None], APIClient]
) -> None:
    token, key = _create(console, is_service="on")

    assert token.is_service and token.tenant == ""
    assert client_for(key).get("/models/some-other-tenant").status_code == 200


@pytest.mark.parametrize("fields", [{}, {"tenant": TENANT, "is_service": "on"}])
def test_a_token_is_either_for_one_tenant_or_a_service(console: Client, fields: dict[str, str]) -> None:
    response = console.post(ADD, {"name": "ambiguous", **fields})

    assert response.status_code == 200  # the form again, with its error
    assert "either for one tenant" in " ".join(response.context["adminform"].form.non_field_errors())
    assert not ApiToken.objects.exists()


def test_revoke_action_makes_the_key_refused(console: Client, client_for: Callable[[str | None], APIClient]) -> None:
    token, key = _create(console, tenant=TENANT)
    _, other_key = _create(console, tenant=TENANT)
    assert client_for(key).get(f"/models/{TENANT}").status_code == 200

    response = console.post(CHANGELIST, {"action": "revoke", "_selected_action": [token.pk]})

    assert response.status_code == 302
    assert "1 token(s) revoked." in [text for _, text in messages_of(response)]
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert client_for(key).get(f"/models/{TENANT}").status_code == 401
    assert client_for(other_key).get(f"/models/{TENANT}").status_code == 200
    assert LogEntry.objects.filter(object_id=str(token.pk), change_message="Revoked").exists()


def test_staff_without_change_permission_cannot_revoke(
    console: Client, viewer: Client, client_for: Callable[[str | None], APIClient]
) -> None:
    token, key = _create(console, tenant=TENANT)

    viewer.post(CHANGELIST, {"action": "revoke", "_selected_action": [token.pk]})

    token.refresh_from_db()
    assert token.revoked_at is None
    assert client_for(key).get(f"/models/{TENANT}").status_code == 200

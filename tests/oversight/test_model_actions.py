"""The model card's actions: activate, archive, retrain, evaluate (POST only, change permission only)."""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.core.files.storage import storages
from django.test import Client

from registry.models import ModelVersion, PromotionEvent
from tests.oversight.conftest import action_url, card_url, messages_of
from tests.conftest import TENANT
from training.models import TrainingJob

pytestmark = pytest.mark.django_db
REASON = "roll back: the newer grid under-performs live"
ACTIONS = ("activate", "archive", "retrain", "evaluate")


def _statuses(*versions: ModelVersion) -> list[str]:
    return [ModelVersion.objects.get(pk=version.pk).status for version in versions]


def test_activate_with_a_reason_switches_the_active_version_and_records_who_and_why(
    console: Client, lead_versions: tuple[ModelVersion, ModelVersion]
) -> None:
    active, candidate = lead_versions

    response = console.post(action_url(candidate, "activate"), {"reason": REASON})

    assert response.status_code == 302 and response["Location"] == card_url(candidate)
    assert _statuses(active, candidate) == ["candidate", "active"]
    event = PromotionEvent.objects.get(to_version=candidate)
    assert (event.from_version_id, event.actor, event.reason) == (active.pk, "admin:admin", REASON)
    entry = LogEntry.objects.get(object_id=str(candidate.pk))
    assert entry.user.get_username() == "admin" and entry.is_change()
    assert REASON in entry.get_change_message()
    assert messages_of(response) == [("success", f"leads_lr v{candidate.version} is now active.")]
    card = console.get(card_url(candidate)).content.decode()
    assert REASON in card.split('id="promotion-history"', 1)[1] and "admin:admin" in card


def test_activate_without_a_reason_changes_nothing(console: Client, lead_versions: tuple[ModelVersion, ModelVersion]) -> None:
    active, candidate = lead_versions
    events = PromotionEvent.objects.count()

    for data in ({}, {"reason": ""}, {"reason": "   "}):
        # Followed, so the card displays (and so consumes) the message before the next post.
        response = console.post(action_url(candidate, "activate"), data, follow=True)

        assert response.redirect_chain == [(card_url(candidate), 302)]
        [(level, text)] = messages_of(response)
        assert level == "error" and "Give a reason" in text
        assert _statuses(active, candidate) == ["active", "candidate"]
        assert PromotionEvent.objects.count() == events
        assert not LogEntry.objects.exists()


def test_activating_the_active_version_is_an_error_message_not_a_500(console: Client, lead_model: ModelVersion) -> None:
    events = PromotionEvent.objects.count()

    response = console.post(action_url(lead_model, "activate"), {"reason": "again"})

    assert response.status_code == 302
    assert messages_of(response) == [("error", f"version {lead_model.version} of 'leads_lr' is already active")]
    assert _statuses(lead_model) == ["active"]
    assert PromotionEvent.objects.count() == events
    assert console.get(card_url(lead_model)).status_code == 200


def test_archive_a_candidate(console: Client, lead_versions: tuple[ModelVersion, ModelVersion]) -> None:
    active, candidate = lead_versions

    response = console.post(action_url(candidate, "archive"), {"reason": "superseded"})

    assert response.status_code == 302
    assert _statuses(active, candidate) == ["active", "archived"]
    assert messages_of(response)[0][0] == "success"
    assert "Archived: superseded" in LogEntry.objects.get(object_id=str(candidate.pk)).get_change_message()


def test_archiving_the_active_version_is_refused(console: Client, lead_model: ModelVersion) -> None:
    response = console.post(action_url(lead_model, "archive"), {"reason": "tidy up"})

    assert response.status_code == 302
    [(level, text)] = messages_of(response)
    assert level == "error" and "is active; activate another version first" in text
    assert _statuses(lead_model) == ["active"]


def test_retrain_queues_a_job_that_the_worker_runs(
    console: Client, lead_model: ModelVersion, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(action_url(lead_model, "retrain"), {"reason": "new quarter"})

    job = TrainingJob.objects.get(retrain_of=lead_model)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/training/trainingjob/{job.pk}/change/"
    assert job.requested_by == "admin:admin" and job.retrain_reason == "manual: new quarter"
    assert (job.algorithm, job.model_name, job.training_config) == (
        lead_model.algorithm, lead_model.name, lead_model.training_config
    )
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert "Retrain requested: new quarter" in LogEntry.objects.get(object_id=str(lead_model.pk)).get_change_message()
    page = console.get(response["Location"]).content.decode()
    assert f"Retrain of v{lead_model.version}: manual: new quarter" in page


def test_a_second_retrain_while_one_is_queued_is_refused(console: Client, lead_model: ModelVersion) -> None:
    # Without executing on-commit callbacks the first job stays queued.
    first = console.post(action_url(lead_model, "retrain"))
    job = TrainingJob.objects.get(retrain_of=lead_model)
    assert job.status == "queued" and job.retrain_reason == "manual: retrain requested in the admin"
    assert first["Location"] == f"/admin/training/trainingjob/{job.pk}/change/"

    second = console.post(action_url(lead_model, "retrain"), {"reason": "again"})

    assert second.status_code == 302 and second["Location"] == card_url(lead_model)
    # The first request's message is still queued (nothing displayed it): read the errors.
    [text] = [text for level, text in messages_of(second) if level == "error"]
    assert "already queued" in text and str(job.pk) in text
    assert TrainingJob.objects.filter(retrain_of=lead_model).count() == 1


def test_evaluate_reports_the_decision_line(console: Client, lead_model: ModelVersion) -> None:
    response = console.post(action_url(lead_model, "evaluate"))

    assert response.status_code == 302 and response["Location"] == card_url(lead_model)
    [(level, text)] = messages_of(response)
    assert level == "info"
    assert text.startswith(f"{TENANT}/leads_lr v{lead_model.version} (lead_conversion): no retrain; triggers fired: none;")
    assert not TrainingJob.objects.filter(retrain_of=lead_model).exists()
    assert "Triggers evaluated: not_due" in LogEntry.objects.get(object_id=str(lead_model.pk)).get_change_message()


def test_action_urls_refuse_get(console: Client, lead_model: ModelVersion) -> None:
    for action in ACTIONS:
        assert console.get(action_url(lead_model, action)).status_code == 405, action
    assert not TrainingJob.objects.filter(retrain_of=lead_model).exists()
    assert not LogEntry.objects.exists()


def test_action_urls_need_a_logged_in_staff_user(client: Client, lead_model: ModelVersion) -> None:
    for action in ACTIONS:
        response = client.post(action_url(lead_model, action), {"reason": "anonymous"})

        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), action
    assert not TrainingJob.objects.filter(retrain_of=lead_model).exists()


def test_staff_without_change_permission_cannot_act(viewer: Client, lead_versions: tuple[ModelVersion, ModelVersion]) -> None:
    active, candidate = lead_versions
    assert viewer.get(card_url(candidate)).status_code == 200  # may look

    for action in ACTIONS:
        target = active if action in ("retrain", "evaluate") else candidate
        response = viewer.post(action_url(target, action), {"reason": "not allowed"})

        assert response.status_code in (302, 403), action
        assert response.status_code == 403 or response["Location"] == "/admin/", action
    assert _statuses(active, candidate) == ["active", "candidate"]
    assert not TrainingJob.objects.filter(retrain_of__isnull=False).exists()
    assert not LogEntry.objects.exists()
    assert not PromotionEvent.objects.filter(actor__startswith="admin:").exists()


def test_staff_without_change_permission_cannot_retrain_from_the_list(viewer: Client, lead_model: ModelVersion) -> None:
    viewer.post("/admin/registry/modelversion/", {"action": "retrain_now", "_selected_action": [lead_model.pk]})

    assert not TrainingJob.objects.filter(retrain_of=lead_model).exists()


def test_retrain_now_list_action_queues_a_job(console: Client, lead_model: ModelVersion) -> None:
    response = console.post("/admin/registry/modelversion/", {"action": "retrain_now", "_selected_action": [lead_model.pk]})

    assert response.status_code == 302
    job = TrainingJob.objects.get(retrain_of=lead_model)
    assert job.requested_by == "admin:admin"
    assert messages_of(response) == [("info", f"{lead_model}: retrain queued (job {job.pk})")]


def test_deleting_a_version_in_the_admin_removes_its_artifact(
    console: Client, lead_versions: tuple[ModelVersion, ModelVersion], django_capture_on_commit_callbacks: Any
) -> None:
    _, candidate = lead_versions
    path = candidate.artifact_path

    with django_capture_on_commit_callbacks(execute=True):  # the file goes once the deletion commits
        response = console.post(f"/admin/registry/modelversion/{candidate.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not ModelVersion.objects.filter(pk=candidate.pk).exists()
    assert not storages["models"].exists(path)


def test_deleting_the_active_version_in_the_admin_is_refused(console: Client, lead_model: ModelVersion) -> None:
    console.post(f"/admin/registry/modelversion/{lead_model.pk}/delete/", {"post": "yes"})

    assert ModelVersion.objects.filter(pk=lead_model.pk, status="active").exists()

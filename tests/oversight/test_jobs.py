"""Training jobs in the admin: progress bars, the step log, the progress JSON view, cancel."""
from __future__ import annotations

import pytest
from django.test import Client

from registry.models import ModelVersion
from tests.oversight.conftest import LEAD, messages_of
from tests.conftest import TENANT
from tests.factories import training_job
from training.models import TrainingJob

pytestmark = pytest.mark.django_db


def _queued_job() -> TrainingJob:
    return training_job(TENANT, model_type=LEAD, model_name="queued_lr")


def _finished_job(version: ModelVersion) -> TrainingJob:
    return TrainingJob.objects.get(model_version=version)


def test_job_list_shows_a_progress_bar_per_job(console: Client, lead_model: ModelVersion) -> None:
    finished = _finished_job(lead_model)

    response = console.get("/admin/training/trainingjob/")

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('<div class="leadml-progress"') == 1
    assert 'class="leadml-progress-bar leadml-done" style="width:100%"' in html
    assert str(finished.pk) in html
    assert 'http-equiv="refresh"' not in html  # nothing queued or running: no auto-refresh


def test_job_list_refreshes_itself_while_a_job_is_queued(console: Client, db: None) -> None:
    _queued_job()

    html = console.get("/admin/training/trainingjob/").content.decode()

    assert '<meta http-equiv="refresh" content="3">' in html
    assert 'class="leadml-progress-bar" style="width:0%"' in html


def test_job_page_shows_the_step_log_and_the_version_it_produced(console: Client, lead_model: ModelVersion) -> None:
    job = _finished_job(lead_model)
    assert job.log, "a finished job logs its steps"

    response = console.get(f"/admin/training/trainingjob/{job.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    step_log = html.split('id="job-log"', 1)[1].split("</table>", 1)[0]
    for step in ("load_data", "validate", "split", "evaluate", "register"):
        assert f"<td>{step}</td>" in step_log
    assert step_log.count("<tr>") == len(job.log) + 1  # the header and one row per step
    assert 'id="job-progress"' in html and 'data-status="succeeded"' in html
    assert f'href="/admin/registry/modelversion/{lead_model.pk}/change/"' in html


def test_progress_view_answers_status_step_percent_and_terminal(console: Client, lead_model: ModelVersion) -> None:
    finished = _finished_job(lead_model)
    queued = _queued_job()

    done = console.get(f"/admin/training/trainingjob/{finished.pk}/progress/")
    waiting = console.get(f"/admin/training/trainingjob/{queued.pk}/progress/")

    assert done.status_code == waiting.status_code == 200
    assert done["Content-Type"] == "application/json"
    body = done.json()
    assert (body["status"], body["percent"], body["terminal"]) == ("succeeded", 100, True)
    assert body["step"] == finished.progress_step and body["log"] == finished.log and body["error"] == ""
    assert {key: waiting.json()[key] for key in ("status", "step", "percent", "terminal")} == {
        "status": "queued", "step": "", "percent": 0, "terminal": False
    }


def test_progress_view_of_an_unknown_job_is_404_and_anonymous_users_are_sent_to_login(console: Client, client: Client, db: None) -> None:
    job = _queued_job()

    assert console.get("/admin/training/trainingjob/00000000-0000-0000-0000-000000000000/progress/").status_code == 404
    console.logout()
    anonymous = console.get(f"/admin/training/trainingjob/{job.pk}/progress/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")


def test_cancel_action_cancels_a_queued_job_and_leaves_a_finished_one(console: Client, lead_model: ModelVersion) -> None:
    queued = _queued_job()
    finished = _finished_job(lead_model)

    response = console.post(
        "/admin/training/trainingjob/", {"action": "cancel", "_selected_action": [str(queued.pk), str(finished.pk)]}
    )

    assert response.status_code == 302
    queued.refresh_from_db()
    finished.refresh_from_db()
    assert queued.status == "cancelled" and queued.finished_at is not None
    assert finished.status == "succeeded"
    texts = [text for _, text in messages_of(response)]
    assert f"job {queued.pk}: cancelled" in texts
    assert any(level == "warning" for level, _ in messages_of(response))  # the finished one cannot be cancelled


def test_staff_without_change_permission_cannot_cancel_jobs(viewer: Client, db: None) -> None:
    queued = _queued_job()

    viewer.post("/admin/training/trainingjob/", {"action": "cancel", "_selected_action": [str(queued.pk)]})

    queued.refresh_from_db()
    assert queued.status == "queued"

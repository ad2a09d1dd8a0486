"""`kill -9` of a real job worker mid-training, on the ORM broker and on Redis: the job does not stick.

A real `manage.py qcluster` trains a retrain of `crm_model` (a random forest grid on
2,000 demo leads, a few seconds of fits) against a migrated SQLite. Once the job
reports a cross-validation fit, the worker is killed with SIGKILL, so nothing of ours
runs: no `except`, no `finally`. After LEADML_JOB_STALE_SECONDS (3 s here, beats every
second) the reaper's task runs, as the worker's schedule runs it every minute:

- ORM broker, only the training process killed (django-q2's sentinel replaces it): the
  job is queued again (attempt 2 of 2) and the surviving cluster trains it to success.
- Redis, the whole cluster killed (Redis forgets the task it handed out): the job is
  failed with the reason (LEADML_JOB_MAX_ATTEMPTS=1).

Either way: no half-registered version, no artifact file without its version, and the
model's one retrain slot free once the job has ended.
"""
from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.reliability.processes import (
    Service,
    artifact_files,
    count_rows,
    django_run,
    job_row,
    service_env,
    wait_for,
)
from tests.reliability.test_serve_command import _free_port

STALE_SECONDS = 3
REAPER_INTERVAL_SECONDS = 60  # LEADML_JOB_REAPER_INTERVAL_MINUTES' default
REDIS_URL = "redis://127.0.0.1:6379/0"
QUEUE_KEY = "django_q:leadml:q"  # django-q2's list for the cluster named in Q_CLUSTER

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes through Linux's /proc")

# A first version trained in this process, then its retrain queued on the broker: a
# grid slow enough that the job is killed between fits, not after them.
SETUP = """
import json
from demo.data import generate_leads
from registry.models import ModelVersion
from training.models import TrainingJob
from training.services.datasets import dataset_create
from training.config import job_config_parse
from training.services.jobs import training_job_create
from training.services.run import training_job_run

rows = json.loads(generate_leads(2000, seed=3).to_json(orient="records"))
dataset_create(tenant="crm", model_type="lead_conversion", name="leads", target="status", rows=rows,
               positive_values=["customer", "won"])
first = TrainingJob.objects.create(tenant="crm", model_type="lead_conversion", algorithm="logistic_regression",
                                   model_name="crm_model", training_config={"cv_folds": 3, "param_grid": {"C": [1.0]}},
                                   requested_by="test")
training_job_run(job_id=first.pk)
v1 = ModelVersion.objects.get(tenant="crm", name="crm_model")
# Slow enough that the job is still fitting when the test first looks, on a loaded machine too.
slow = {"cv_folds": 3, "param_grid": {"n_estimators": [250], "max_depth": [None, 6]}}
retrain = training_job_create(tenant="crm", model_type="lead_conversion", algorithm="random_forest",
                              model_name="crm_model", training_config=job_config_parse(slow), requested_by="test",
                              retrain_of=v1)
print(json.dumps({"job_id": str(retrain.id), "v1_artifact": v1.artifact_path}))
"""
REAP = """
import json
from training.services.reaper import training_jobs_reap
print(json.dumps([outcome.__dict__ for outcome in training_jobs_reap()]))
"""
# Another retrain of the same model: refused (ConflictError) while one is queued or running.
RETRAIN_AGAIN = """
import json
from registry.models import ModelVersion
from training.config import job_config_parse
from training.services.jobs import training_job_create

v1 = ModelVersion.objects.get(tenant="crm", name="crm_model", version=1)
job = training_job_create(tenant="crm", model_type="lead_conversion", algorithm="logistic_regression",
                          model_name="crm_model", training_config=job_config_parse({"cv_folds": 3}), requested_by="test",
                          retrain_of=v1)
print(json.dumps({"job_id": str(job.id), "status": job.status}))
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return service_env(
        tmp_path,
        LEADML_JOB_STALE_SECONDS=str(STALE_SECONDS),
        LEADML_JOB_HEARTBEAT_SECONDS="1",
        OMP_NUM_THREADS="1",
        **extra,
    )


def _train_until_mid_fit(tmp_path: Path, env: dict[str, str]) -> tuple[Service, dict[str, Any], dict[str, Any]]:
    """Start a worker, queue the slow retrain, and return once it reported a fit (worker, setup, job row)."""
    worker = Service(["qcluster"], env, tmp_path / "qcluster.log")  # starts while the setup runs
    setup = django_run(SETUP, env=env)
    database = tmp_path / "leadml.sqlite3"

    def mid_fit() -> dict[str, Any] | None:
        job = job_row(database, setup["job_id"])
        assert job["status"] in ("queued", "running"), job
        return job if job["status"] == "running" and " fit " in job["progress_step"] else None

    job = wait_for("the retrain to report a fit", mid_fit, timeout=60, explain=worker.log)
    return worker, setup, job


def _reap_after_stale(env: dict[str, str], killed_at: float) -> list[dict[str, Any]]:
    time.sleep(max(0.0, killed_at + STALE_SECONDS + 0.5 - time.monotonic()))
    return django_run(REAP, env=env)


def test_a_worker_killed_mid_fit_on_the_orm_broker_has_its_job_queued_again_and_trained(tmp_path: Path) -> None:
    env = _env(tmp_path, LEADML_JOB_MAX_ATTEMPTS="2")
    database = tmp_path / "leadml.sqlite3"
    worker, setup, running = _train_until_mid_fit(tmp_path, env)
    try:
        # The worker's schedule looks for lost jobs every minute; migrate created it.
        assert count_rows(database, "django_q_schedule", "func = 'training.tasks.training_jobs_reap_task'") == 1
        training_pid = int(running["worker"].rsplit(":", 1)[1])
        assert training_pid in worker.processes() and training_pid != worker.process.pid

        os.kill(training_pid, signal.SIGKILL)
        killed_at, killed_wall = time.monotonic(), datetime.now(timezone.utc)

        reaped = _reap_after_stale(env, killed_at)

        # This reaper, or the cluster's own schedule a moment earlier, queued it again.
        assert [item["action"] for item in reaped] in (["requeued"], []), reaped
        requeued = [entry for entry in job_row(database, setup["job_id"])["log"] if entry["step"] == "requeued"]
        assert len(requeued) == 1, requeued
        assert requeued[0]["error"].startswith("worker lost: no heartbeat for ") and "attempt 2 of 2" in requeued[0]["error"]
        lost_for = (datetime.fromisoformat(requeued[0]["at"]) - killed_wall).total_seconds()
        assert STALE_SECONDS - 1.5 <= lost_for <= STALE_SECONDS + REAPER_INTERVAL_SECONDS, lost_for
        assert count_rows(database, "registry_modelversion") == 1  # nothing half-registered
        assert artifact_files(tmp_path / "models") == {setup["v1_artifact"]}

        # The cluster outlived its worker (django-q2 started another) and trains the job again.
        done = wait_for(
            "the re-queued job to finish",
            lambda: (job := job_row(database, setup["job_id"]))["status"] not in ("queued", "running") and job,
            timeout=90,
            explain=worker.log,
        )
    finally:
        worker.kill_all()

    assert done["status"] == "succeeded" and done["attempts"] == 2 and done["error"] == "", done
    steps = [entry["step"] for entry in done["log"]]
    assert "requeued" in steps and steps[-1] == "succeeded"
    assert count_rows(database, "registry_modelversion") == 2
    (v2_artifact,) = artifact_files(tmp_path / "models") - {setup["v1_artifact"]}
    assert count_rows(database, "registry_modelversion", f"artifact_path = '{v2_artifact}'") == 1
    # Nothing holds the model's retrain slot (the Redis test queues another retrain to show it).
    assert count_rows(database, "training_trainingjob", "status IN ('queued', 'running')") == 0


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The local Redis, in a database (1-15) nobody else uses now: no other worker takes our tasks."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    numbers = list(range(1, 16))
    random.shuffle(numbers)
    for number in numbers:
        connection = redis.Redis(host="127.0.0.1", port=6379, db=number)
        if connection.dbsize() == 0:
            break
    else:
        pytest.skip("every Redis database 1-15 is in use")
    yield f"redis://127.0.0.1:6379/{number}"
    connection.delete(QUEUE_KEY)


def test_a_worker_killed_mid_fit_on_redis_has_its_job_failed_and_its_slot_freed(tmp_path: Path, redis_url: str) -> None:
    env = _env(tmp_path, REDIS_URL=redis_url, LEADML_JOB_MAX_ATTEMPTS="1")
    database = tmp_path / "leadml.sqlite3"
    worker, setup, _ = _train_until_mid_fit(tmp_path, env)

    worker.kill_all()  # kill -9 of every qcluster process
    killed_at = time.monotonic()

    # Redis handed the task out and forgot it: nothing will deliver it again.
    assert redis.Redis.from_url(redis_url).llen(QUEUE_KEY) == 0
    assert job_row(database, setup["job_id"])["status"] == "running"
    reaped = _reap_after_stale(env, killed_at)
    left_running_after = time.monotonic() - killed_at

    assert [(item["job_id"], item["action"]) for item in reaped] == [(setup["job_id"], "failed")], reaped
    assert left_running_after <= STALE_SECONDS + REAPER_INTERVAL_SECONDS
    job = job_row(database, setup["job_id"])
    assert job["status"] == "failed" and job["finished_at"], job
    assert job["error"].startswith("worker lost: no heartbeat for ") and job["error"].endswith("(attempt 1 of 1)")
    assert count_rows(database, "registry_modelversion") == 1
    assert artifact_files(tmp_path / "models") == {setup["v1_artifact"]}
    assert count_rows(database, "monitoring_monitoringevent", "kind = 'retrain_finished'") == 1
    assert django_run(RETRAIN_AGAIN, env=env)["status"] == "queued"  # the slot is free again


def test_serve_ends_jobs_lost_with_an_earlier_worker_before_it_starts_its_own(tmp_path: Path) -> None:
    """As after a crash of the whole container: the job a dead worker left running is dealt with at start."""
    env = _env(tmp_path, LEADML_JOB_MAX_ATTEMPTS="2")
    lost = django_run(
        """
import json
from datetime import timedelta
from django.utils import timezone
from training.models import TrainingJob

beat = timezone.now() - timedelta(minutes=5)
job = TrainingJob.objects.create(tenant="crm", model_type="lead_conversion", algorithm="random_forest",
                                 model_name="crm_model", status="running", started_at=beat, heartbeat_at=beat, attempts=2)
print(json.dumps({"job_id": str(job.id)}))
""",
        env=env,
    )
    port = _free_port()
    serve = Service(["serve", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "serve.log")
    try:
        wait_for("serve to start", lambda: "leadml serving on" in serve.log(), timeout=60, explain=serve.log)
    finally:
        serve.kill_all()

    line = f"job {lost['job_id']} failed: worker lost: no heartbeat for "
    assert line in serve.log() and serve.log().index(line) < serve.log().index("leadml serving on"), serve.log()
    job = job_row(tmp_path / "leadml.sqlite3", lost["job_id"])
    assert job["status"] == "failed" and "(attempt 2 of 2)" in job["error"]

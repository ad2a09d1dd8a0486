"""Faults of one host stay on that host; a database that cannot be reached is a 503.

Two `manage.py serve` processes share one database, each with its own model folder, as
two hosts would: the one that lacks a version's artifact serves the model's previous
version (or the rules), says so, and stays in the load balancer's pool; the other is
untouched.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from demo.data import generate_leads
from tests.reliability.test_serve_command import (  # noqa: F401  (serve_env and start_serve are fixtures)
    BASE_DIR,
    ServeProcess,
    _request,
    _wait_for_job_worker,
    serve_env,
    start_serve,
)


def _token(env: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", "create_api_token", "--service"],
        cwd=BASE_DIR, env=env, check=True, capture_output=True, text=True, timeout=120,
    ).stdout.strip()


def test_a_host_missing_an_artifact_serves_the_previous_version_and_stays_in_the_pool(
    start_serve: Callable[..., ServeProcess], serve_env: dict[str, str], tmp_path: Path  # noqa: F811
) -> None:
    key = _token(serve_env)
    first = start_serve("--workers", "1", "--threads", "2")  # trains: the artifacts are in its folder
    _wait_for_job_worker(first)
    tenant = "two-hosts"
    rows = json.loads(generate_leads(200, seed=13).to_json(orient="records"))
    status, body = _request(first.port, "POST", "/datasets", {
        "user_id": tenant, "model_type": "lead_conversion", "name": "crm", "target": "status",
        "positive_values": ["customer", "won"], "rows": rows,
    }, key)
    assert status == 201, body
    train = {"model_type": "lead_conversion", "algorithm": "logistic_regression", "model_name": "m", "user_id": tenant,
             "training_config": {"cv_folds": 3}}
    for version in (1, 2):
        status, body = _request(first.port, "POST", "/train", train | {"training_config": {
            "cv_folds": 3, "min_improvement": 0.0 if version == 2 else 0.002}}, key, timeout=240)
        assert status == 200 and body["model_version"] == version, body
    status, body = _request(first.port, "POST", f"/models/{tenant}/m/activate", {"version": 2, "reason": "x"}, key)
    assert status in (200, 409), body  # already active when it won the promotion

    # The second host has version 1's file but not version 2's.
    models_dir = Path(serve_env["MODEL_DIR"])
    second_dir = tmp_path / "second-host-models"
    subprocess.run(["cp", "-a", str(models_dir), str(second_dir)], check=True)
    newest = max(second_dir.rglob("*.joblib"), key=lambda path: path.stat().st_mtime)
    newest.unlink()
    second = start_serve("--no-worker", "--workers", "1", "--threads", "2", env={"MODEL_DIR": str(second_dir)})
    second.wait_until_serving()

    score = {"model_type": "lead_conversion", "user_id": tenant, "data": {"email": "a@acme.com", "lead_score": 70}}
    status, body = _request(second.port, "POST", "/predict", score, key)
    assert status == 200 and body["source"] == "model" and body["model_version"] == 1, body
    assert any("served by version 1" in warning for warning in body["warnings"]), body["warnings"]
    status, health = _request(second.port, "GET", "/health")
    assert status == 200 and health["status"] == "degraded", health
    assert health["checks"]["models"]["artifact_faults"] == 1

    # The first host is not affected: version 2, healthy.
    status, body = _request(first.port, "POST", "/predict", score, key)
    assert status == 200 and body["model_version"] == 2 and not any("served by" in w for w in body["warnings"])
    status, health = _request(first.port, "GET", "/health")
    assert status == 200 and health["checks"]["models"]["artifact_faults"] == 0
    assert "artifact_unusable" in second.log() and "artifact_unusable" not in first.log()


def test_a_database_that_cannot_be_reached_is_a_503_with_retry_after(
    start_serve: Callable[..., ServeProcess],  # noqa: F811
) -> None:
    server = start_serve(
        "--no-worker", "--workers", "1", "--threads", "2",
        env={"DATABASE_URL": "postgres://postgres@127.0.0.1:9/leadml", "CONN_MAX_AGE": "0"},
    )
    server.wait_until_serving()
    status, health = _request(server.port, "GET", "/health")
    assert status == 503 and health["status"] == "unhealthy" and health["services"]["database"] == "unavailable"
    status, body = _request(server.port, "POST", "/predict", {"model_type": "lead_conversion", "user_id": "u",
                                                            "data": {"a": 1}}, "lml_not-a-real-key")
    assert status == 503, body
    assert body["success"] is False and body["details"] == {"database": ["OperationalError"]}
    assert "Traceback" not in server.log()

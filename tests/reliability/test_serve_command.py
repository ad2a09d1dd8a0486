"""`manage.py serve` as a real subprocess: it comes up, and Ctrl-C leaves nothing behind.

The command is started in a session of its own, so every process it creates (gunicorn's
arbiter and workers, qcluster's sentinel and pool) carries that session id whatever
process group it is in; "nothing left" means no live process in that session.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.data import generate_leads
from tests.reliability.processes import BASE_DIR, session_processes, service_env

START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 30

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="finds leftover processes through Linux's /proc"
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_http(port: int) -> bool:
    """Whether an HTTP server answers on the port: any status counts, even 404 or 503."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/health")
        connection.getresponse().read()
    except (ConnectionError, OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


def _port_closed(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def serve_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a `serve` subprocess, with a freshly migrated SQLite database (one worker of each)."""
    return service_env(tmp_path_factory.mktemp("serve"))


class ServeProcess:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode} before serving:\n{self.log()}")
            if _answers_http(self.port):
                return
            time.sleep(0.25)
        pytest.fail(f"serve did not answer HTTP within {START_TIMEOUT_SECONDS}s:\n{self.log()}")

    def interrupt_and_wait(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve did not exit within {STOP_TIMEOUT_SECONDS}s of SIGINT:\n{self.log()}")


@pytest.fixture
def start_serve(serve_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*extra_args: str, env: dict[str, str] | None = None) -> ServeProcess:
        port = _free_port()
        log_path = tmp_path / f"serve-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port), *extra_args],
                cwd=BASE_DIR,
                env={**serve_env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: the session id marks everything it starts, and the
                # test's own Ctrl-C handling stays out of it.
                start_new_session=True,
            )
        started.append(process)
        return ServeProcess(process, port, log_path)

    yield start

    # A failed test must not leave servers or workers running on the CI machine.
    for process in started:
        leftovers = session_processes(process.pid)
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_for_session_empty(session_id: int, timeout: float = 15) -> dict[int, str]:
    # Grandchildren are reaped by their own parents a moment after the parent we waited
    # for has exited; give them that moment before calling them leftovers.
    deadline = time.monotonic() + timeout
    while (leftovers := session_processes(session_id)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return leftovers


def test_serve_stops_gunicorn_cleanly_on_sigint(start_serve: Callable[..., ServeProcess]) -> None:
    server = start_serve("--no-worker")
    server.wait_until_serving()
    running = session_processes(server.process.pid)
    assert any("gunicorn" in cmdline for cmdline in running.values()), running
    assert not any("qcluster" in cmdline for cmdline in running.values()), running

    returncode = server.interrupt_and_wait()

    assert returncode == 0, server.log()
    # Stopped on request, not killed when serve's patience ran out.
    assert "not stopped in time" not in server.log()
    assert _wait_for_session_empty(server.process.pid) == {}
    assert _port_closed(server.port)
    assert "job worker not started" in server.log()


def _wait_for_job_worker(server: ServeProcess) -> dict[int, str]:
    """Wait until serve answers HTTP and its qcluster runs; returns the session's processes."""
    server.wait_until_serving()
    # The worker starts beside the server, not before it: wait for it to show up.
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        running = session_processes(server.process.pid)
        if any("qcluster" in cmdline for cmdline in running.values()):
            break
        assert time.monotonic() < deadline, f"no qcluster process started:\n{server.log()}"
        assert server.process.poll() is None, f"serve exited:\n{server.log()}"
        time.sleep(0.25)
    assert any("gunicorn" in cmdline for cmdline in running.values()), running
    # A cluster interrupted while its sentinel still spawns the pool only stops once the
    # pool is up; wait for django-q2's own "running." line so a stop is timed from there.
    while not re.search(r"Q Cluster \S+ \[\w+\] running\.", server.log()):
        assert time.monotonic() < deadline, f"qcluster never reported running:\n{server.log()}"
        assert server.process.poll() is None, f"serve exited:\n{server.log()}"
        time.sleep(0.25)
    return running


def test_serve_stops_job_worker_too_on_sigint(start_serve: Callable[..., ServeProcess]) -> None:
    # A generous patience: on a loaded two-core CI machine the cluster's orderly stop
    # (pusher, pool, monitor, each polled) can outlast the 8 s default; the test is about
    # stopping on request without leftovers, not about speed.
    server = start_serve("--stop-timeout", "20")
    _wait_for_job_worker(server)

    returncode = server.interrupt_and_wait()

    assert returncode == 0, server.log()
    # Stopped on request, not killed when serve's patience ran out.
    assert "not stopped in time" not in server.log()
    assert _wait_for_session_empty(server.process.pid) == {}
    assert _port_closed(server.port)
    assert "job worker running" in server.log()


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _qcluster_leader(server: ServeProcess) -> int | None:
    """The qcluster serve started itself (its direct child), if one runs now."""
    for pid, cmdline in session_processes(server.process.pid).items():
        if "qcluster" in cmdline and _parent(pid) == server.process.pid:
            return pid
    return None


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid not in (ancestor, 0, 1):
        parent = _parent(pid)
        if parent is None:
            return False
        pid = parent
    return pid == ancestor


def test_serve_restarts_the_job_worker_when_it_dies_while_the_api_keeps_answering(
    start_serve: Callable[..., ServeProcess],
) -> None:
    server = start_serve("--stop-timeout", "20")
    _wait_for_job_worker(server)
    first = _qcluster_leader(server)
    assert first is not None

    os.kill(first, signal.SIGKILL)

    # The API answers all along; serve says why the worker went and starts a new one.
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    answers = 0
    while (second := _qcluster_leader(server)) in (None, first):
        assert time.monotonic() < deadline, f"no new qcluster started:\n{server.log()}"
        assert server.process.poll() is None, f"serve exited:\n{server.log()}"
        assert _answers_http(server.port), f"the API stopped answering:\n{server.log()}"
        answers += 1
        time.sleep(0.2)
    assert answers >= 1
    assert "qcluster exited unexpectedly (killed by SIGKILL)" in server.log()
    assert f"qcluster restarted (pid {second})" in server.log()
    assert _answers_http(server.port)
    # The killed leader's sentinel and pool were orphaned, not stopped: serve killed them
    # before starting the new worker, so exactly one cluster runs.
    while not re.search(r"Q Cluster \S+ \[\w+\] running\.", server.log().split(f"pid {second}")[-1]):
        assert time.monotonic() < deadline + START_TIMEOUT_SECONDS, f"the new qcluster never ran:\n{server.log()}"
        time.sleep(0.25)
    workers = [pid for pid, cmdline in session_processes(server.process.pid).items() if "qcluster" in cmdline]
    assert workers and all(_descends_from(pid, second) for pid in workers), (first, second, workers)

    assert server.interrupt_and_wait() == 0, server.log()
    assert _wait_for_session_empty(server.process.pid) == {}
    assert _port_closed(server.port)


def test_serve_fails_and_stops_the_job_worker_when_the_server_dies(start_serve: Callable[..., ServeProcess]) -> None:
    server = start_serve()
    running = _wait_for_job_worker(server)
    # The gunicorn arbiter is serve's direct child; its workers are below it.
    arbiter = min(pid for pid, cmdline in running.items() if "gunicorn" in cmdline)

    os.kill(arbiter, signal.SIGKILL)

    try:
        returncode = server.process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve kept running after its server died:\n{server.log()}")
    assert returncode != 0, server.log()
    assert "gunicorn exited unexpectedly" in server.log()
    assert _wait_for_session_empty(server.process.pid) == {}
    assert _port_closed(server.port)


def _request(port: int, method: str, path: str, body: Any = None, key: str = "", timeout: float = 30) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode(errors="replace")


def test_synchronous_train_outlives_the_worker_timeout_while_predict_answers(
    start_serve: Callable[..., ServeProcess], serve_env: dict[str, str], tmp_path: Path
) -> None:
    """The CRM's plain `POST /train` waits for its job longer than gunicorn's worker timeout.

    The job worker only starts after twice the timeout has passed, so the request waits
    at least that long; meanwhile the same single worker process answers predictions.
    """
    key = subprocess.run(
        [sys.executable, "manage.py", "create_api_token", "--service"],
        cwd=BASE_DIR, env=serve_env, check=True, capture_output=True, text=True, timeout=120,
    ).stdout.strip()
    server = start_serve("--no-worker", "--workers", "1", "--threads", "4", "--timeout", "3")
    server.wait_until_serving()
    rows = json.loads(generate_leads(200, seed=11).to_json(orient="records"))
    status, body = _request(server.port, "POST", "/datasets", {
        "user_id": "crm-tenant", "model_type": "lead_conversion", "name": "crm", "target": "status",
        "positive_values": ["customer", "won"], "rows": rows,
    }, key)
    assert status == 201, body

    answer: dict[str, Any] = {}

    def train() -> None:
        answer["status"], answer["body"] = _request(server.port, "POST", "/train", {
            "model_type": "lead_conversion", "algorithm": "logistic_regression", "model_name": "crm_model",
            "user_id": "crm-tenant",
        }, key, timeout=300)

    waiting = threading.Thread(target=train)
    waiting.start()
    deadline = time.monotonic() + 7  # more than twice the 3 s worker timeout
    predictions = 0
    while time.monotonic() < deadline:
        status, body = _request(server.port, "POST", "/predict", {
            "model_type": "lead_conversion", "user_id": "crm-tenant", "data": {"email": "a@acme.com"},
        }, key)
        assert status == 200, body
        predictions += 1
        time.sleep(0.2)
    assert waiting.is_alive(), answer
    assert predictions >= 10

    log_path = tmp_path / "qcluster.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=BASE_DIR, env=serve_env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        waiting.join(timeout=240)
    finally:
        for pid in session_processes(worker.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        worker.wait()
    assert not waiting.is_alive(), log_path.read_text(errors="replace")
    assert answer["status"] == 200, answer
    body = answer["body"]
    assert body["success"] is True and body["model_path"].endswith(".joblib")
    assert isinstance(body["metadata"]["feature_importance"], dict) and body["metrics"]["roc_auc"] > 0.6
    assert "WORKER TIMEOUT" not in server.log(), server.log()


def test_a_version_activated_through_one_process_is_served_by_another_on_its_next_request(
    start_serve: Callable[..., ServeProcess], serve_env: dict[str, str]
) -> None:
    key = subprocess.run(
        [sys.executable, "manage.py", "create_api_token", "--service"],
        cwd=BASE_DIR, env=serve_env, check=True, capture_output=True, text=True, timeout=120,
    ).stdout.strip()
    first = start_serve("--workers", "1", "--threads", "2")  # with the job worker
    second = start_serve("--no-worker", "--workers", "1", "--threads", "2")
    _wait_for_job_worker(first)
    second.wait_until_serving()
    tenant = "two-processes"
    rows = json.loads(generate_leads(200, seed=12).to_json(orient="records"))
    status, body = _request(first.port, "POST", "/datasets", {
        "user_id": tenant, "model_type": "lead_conversion", "name": "crm", "target": "status",
        "positive_values": ["customer", "won"], "rows": rows,
    }, key)
    assert status == 201, body
    train = {"model_type": "lead_conversion", "algorithm": "logistic_regression", "model_name": "m", "user_id": tenant,
             "training_config": {"cv_folds": 3, "min_improvement": 1.0}}
    for expected_version in (1, 2):
        status, body = _request(first.port, "POST", "/train", train, key, timeout=240)
        assert status == 200 and body["model_version"] == expected_version, body

    score = {"model_type": "lead_conversion", "user_id": tenant, "data": {"email": "a@acme.com", "lead_score": 70}}

    def served_version(server: ServeProcess) -> int:
        status, body = _request(server.port, "POST", "/predict", score, key)
        assert status == 200, body
        return int(body["model_version"])

    # Both processes have v1 (the active one) in memory now.
    assert served_version(first) == 1 and served_version(second) == 1
    status, body = _request(first.port, "POST", f"/models/{tenant}/m/activate", {"version": 2, "reason": "try"}, key)
    assert status == 200, body
    assert served_version(second) == 2
    status, body = _request(second.port, "POST", f"/models/{tenant}/m/activate", {"version": 1, "reason": "back"}, key)
    assert status == 200, body
    assert served_version(first) == 1 and served_version(second) == 1


def test_serve_runs_without_debug_and_serves_the_admins_hashed_static_files(
    start_serve: Callable[..., ServeProcess],
) -> None:
    server = start_serve("--no-worker", "--workers", "1", "--threads", "2")
    server.wait_until_serving()
    status, page = _request(server.port, "GET", "/admin/login/")
    assert status == 200
    stylesheets = re.findall(r'href="(/static/[^"]+\.css)"', page)
    scripts = re.findall(r'src="(/static/[^"]+\.js)"', page) + ["/static/admin/js/theme.js"]
    assert stylesheets and all(re.search(r"\.[0-9a-f]{12}\.css$", href) for href in stylesheets), stylesheets
    for path in stylesheets + scripts[:1]:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status == 200 and body, path
    # DEBUG is off: an unknown URL is a plain 404, not Django's page listing every route.
    status, missing = _request(server.port, "GET", "/no-such-page")
    assert status == 404 and "URLconf" not in str(missing)


@pytest.mark.parametrize("access_log", [False, True])
def test_gunicorn_writes_an_access_log_only_when_asked(access_log: bool) -> None:
    from leadml.management.commands.serve import Command

    argv = Command()._gunicorn_argv("127.0.0.1:8001", 1, 1, 30, 8.0, access_log)
    assert ("--access-logfile" in argv) is access_log
    assert argv[argv.index("--error-logfile") + 1] == "-"  # errors are logged either way

"""Real service processes for the reliability tests: `manage.py` commands against a throwaway SQLite.

As tests/reliability/test_serve_command.py starts them: each in a session of its own, so every
process it forks (qcluster's sentinel, pool, pusher) can be found, and killed, by the
session id. The test reads the job rows straight from the SQLite file, without Django.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[2]


def session_processes(session_id: int) -> dict[int, str]:
    """Live (non-zombie) processes in a session, as pid -> command line."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # exited while we looked
        # The command name is in parentheses and may itself contain spaces or ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        state, session = fields[0], int(fields[3])
        if session == session_id and state != "Z":
            found[int(entry.name)] = cmdline.strip()
    return found


def service_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a service process on a fresh, migrated SQLite database in `var_dir`."""
    env = dict(os.environ)
    env.pop("REDIS_URL", None)  # the caller's Redis is not ours; a test sets its own
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "leadml.settings.base",
            "DATABASE_URL": f"sqlite:///{var_dir / 'leadml.sqlite3'}",
            "LEADML_VAR_DIR": str(var_dir),
            "MODEL_DIR": str(var_dir / "models"),
            "WORKERS": "1",
            "LEADML_JOB_WORKERS": "1",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    manage("migrate", "--noinput", env=env, timeout=180)
    return env


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> str:
    """Run a `manage.py` command to completion and return its standard output."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def django_run(code: str, *, env: dict[str, str], timeout: float = 180) -> Any:
    """Run Python code in a Django process of the service; it prints one JSON line last, returned here."""
    out = manage("shell", "--no-imports", "-c", code, env=env, timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])


class Service:
    """A `manage.py` command running in its own session, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def processes(self) -> dict[int, str]:
        return session_processes(self.process.pid)

    def kill_all(self) -> None:
        """SIGKILL every process of the session: the whole service dies at once, as with `kill -9` of all."""
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 15
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.1)


def http_request(
    port: int, method: str, path: str, body: Any = None, key: str = "", timeout: float = 30
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body) of one request to a local server."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    try:
        connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    return response.status, dict(response.getheaders()), json.loads(raw) if raw else None


def job_row(database: Path, job_id: str) -> dict[str, Any]:
    """The job's row as the service stored it (read-only, straight from SQLite)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute("SELECT * FROM training_trainingjob WHERE id = ?", (job_id.replace("-", ""),)).fetchone()
    assert row is not None, f"no job {job_id}"
    job = dict(row)
    job["log"] = json.loads(job["log"])
    return job


def count_rows(database: Path, table: str, where: str = "1 = 1") -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        return int(connection.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}").fetchone()[0])


def wait_for(what: str, check: Callable[[], Any], *, timeout: float, explain: Callable[[], str] = lambda: "") -> Any:
    """Poll `check` until it returns something truthy; fail with `what` and `explain()` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{explain()}")
        time.sleep(0.2)


def artifact_files(model_dir: Path) -> set[str]:
    """Every file under MODEL_DIR, as storage paths."""
    if not model_dir.exists():
        return set()
    return {str(path.relative_to(model_dir)) for path in model_dir.rglob("*") if path.is_file()}

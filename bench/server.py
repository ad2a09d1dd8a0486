"""The HTTP side of `manage.py bench`: `manage.py serve` as a child, keep-alive load clients, RSS.

`serving` runs the real server command on a free loopback port, with the bench floor
routed (bench/floor.py) and the database, folders and settings of the calling
process. `load_run` drives one path with N concurrent clients, each on one kept-alive
connection, as a CRM's connection pool would; `worker_rss_mib` reads what each gunicorn
worker holds in memory. Summaries are bench/scoring_http.py's business, verdicts
bench/targets.py's.
"""
from __future__ import annotations

import http.client
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import connection

# High enough that per-token throttling never answers 429 during the load phases; the
# throttle still counts every request, as in production.
THROTTLE_RATE = "1000000/min"
SERVER_START_TIMEOUT_SECONDS = 60.0
SERVER_STOP_TIMEOUT_SECONDS = 30.0
# A degraded /health (e.g. another tenant's broken model) still serves predictions;
# after this long we measure anyway and say so.
HEALTH_DEGRADED_GRACE_SECONDS = 10.0
HTTP_TIMEOUT_SECONDS = 180.0
# The first bytes of an error answer kept per kind of error, to say what went wrong.
ERROR_SAMPLE_CHARS = 300
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


class ServeFailed(Exception):
    """The server did not come up, or its database cannot be shared with it."""


# --- The server --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    """DATABASE_URL for the database this process is connected to (under pytest, the test database).

    The server must store into the database the bench counts in; the caller's
    DATABASE_URL may name another (pytest-django swaps in `test_<name>`).
    """
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(db["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            raise ServeFailed("an in-memory SQLite database cannot be shared with the server; use a file")
        return f"sqlite:///{Path(name).resolve()}"
    if connection.vendor != "postgresql":
        raise ServeFailed(f"the HTTP bench knows SQLite and PostgreSQL, not {connection.vendor}")
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    options = {key: value for key, value in (db.get("OPTIONS") or {}).items() if isinstance(value, (str, int))}
    query = f"?{urlencode(options)}" if options else ""
    return f"postgres://{credentials}{host}{port}/{quote(str(db['NAME']), safe='')}{query}"


def server_env() -> dict[str, str]:
    """The environment `serve` gets: ours, pinned to this process's database, folders and settings."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
            "DATABASE_URL": database_url(),
            "LEADML_VAR_DIR": str(settings.VAR_DIR),
            "MODEL_DIR": str(settings.STORAGES["models"]["OPTIONS"]["location"]),
            "LEADML_THROTTLE_RATE": THROTTLE_RATE,
            "LEADML_BENCH_FLOOR": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class Server:
    """`manage.py serve` as a child process, logging to a file."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    access_log: bool
    health_status: int | None = None
    # What /health said the first time it answered anything but 200, to say why.
    health_first_failure: str | None = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_count(self, text: str) -> int:
        """How many lines of the server's log contain `text`."""
        try:
            with self.log_path.open(errors="replace") as log:
                return sum(text in line for line in log)
        except OSError:
            return 0

    def wait_ready(self) -> None:
        """Wait for GET /health to answer 200 (or a lasting 503: degraded but serving)."""
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
        degraded_since: float | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServeFailed(f"serve exited with {self.process.returncode}:\n{self.log_tail()}")
            self.health_status, body = _health(self.port)
            if self.health_status not in (None, 200) and self.health_first_failure is None:
                self.health_first_failure = f"{self.health_status} {body[:ERROR_SAMPLE_CHARS].decode(errors='replace')}"
            if self.health_status == 200:
                return
            if self.health_status == 503:
                degraded_since = degraded_since or time.monotonic()
                if time.monotonic() - degraded_since >= HEALTH_DEGRADED_GRACE_SECONDS:
                    return
            time.sleep(0.25)
        raise ServeFailed(f"serve did not answer /health within {SERVER_START_TIMEOUT_SECONDS:g}s:\n{self.log_tail()}")

    def stop(self) -> int | None:
        """SIGINT (serve stops gunicorn and the worker in order), then SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=SERVER_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _health(port: int) -> tuple[int | None, bytes]:
    """GET /health: the status (None: no answer yet) and the body."""
    connection_ = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection_.request("GET", "/health")
        response = connection_.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None, b""
    finally:
        connection_.close()


@contextmanager
def serving(*, workers: int, log_path: Path, access_log: bool | None = None) -> Iterator[Server]:
    """Run `manage.py serve` on a free loopback port until the block ends, however it ends.

    `access_log` None keeps serve's default (LEADML_ACCESS_LOG); True or False forces it.
    """
    port = free_port()
    env = server_env()
    argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", str(workers)]
    if access_log is not None:
        argv.append("--access-log" if access_log else "--no-access-log")
    with log_path.open("wb") as log:
        # Its own process group: a Ctrl-C on our terminal reaches only us, and we stop it once.
        process = subprocess.Popen(
            argv, env=env, cwd=settings.BASE_DIR, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            process_group=0,
        )
    effective = settings.LEADML_ACCESS_LOG if access_log is None else access_log
    server = Server(port=port, process=process, log_path=log_path, access_log=effective)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


# --- Memory ------------------------------------------------------------------------


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        # The command name is in parentheses and may itself contain spaces or ")".
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    return children


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _rss_mib(pid: int) -> float | None:
    try:
        for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _worker_pids(server: Server) -> list[int]:
    """The gunicorn workers: the children of the gunicorn arbiter that serve started."""
    children = _children_by_parent()
    arbiters = [pid for pid in children.get(server.process.pid, []) if "gunicorn" in _cmdline(pid)]
    return sorted(pid for arbiter in arbiters for pid in children.get(arbiter, []))


def worker_rss_mib(server: Server) -> list[float]:
    """VmRSS of each gunicorn worker."""
    return [rss for rss in map(_rss_mib, _worker_pids(server)) if rss is not None]


def worker_cpu_seconds(server: Server) -> float:
    """CPU time (user + system, every thread) the gunicorn workers have used so far.

    On a shared machine the workers' own CPU time per request is steadier than
    throughput, which also moves with whatever else runs.
    """
    ticks = 0
    for pid in _worker_pids(server):
        try:
            stat = (Path("/proc") / str(pid) / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return ticks / os.sysconf("SC_CLK_TCK")


def database_cpu_seconds() -> float | None:
    """CPU time the database server has used so far: None when it runs elsewhere or cannot be read.

    SQLite works inside the workers, whose CPU time holds it already (0). A PostgreSQL
    on this machine is every process named `postgres`: the backends serving the workers,
    and the WAL writer and checkpointer their writes keep busy.
    """
    if connection.vendor == "sqlite":
        return 0.0
    if connection.vendor != "postgresql" or (connection.settings_dict.get("HOST") or "localhost") not in LOCAL_HOSTS:
        return None
    ticks = 0
    found = False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
        found = True
    return ticks / os.sysconf("SC_CLK_TCK") if found else None


def client_cpu_seconds() -> float:
    """CPU time this process (the bench, whose threads are the load clients) has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- Load --------------------------------------------------------------------------


@dataclass
class LoadTally:
    """What some clients saw on one path: each answered request's latency, the errors."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    worker_cpu_seconds: float = 0.0  # the server's workers, during the load
    database_cpu_seconds: float | None = 0.0  # the database server's (None: not on this machine)
    client_cpu_seconds: float = 0.0  # the load clients' (this process)

    def add(self, other: LoadTally) -> None:
        self.latencies += other.latencies
        self.errors.update(other.errors)
        for kind, sample in other.error_samples.items():
            self.error_samples.setdefault(kind, sample)
        self.seconds += other.seconds
        self.worker_cpu_seconds += other.worker_cpu_seconds
        self.client_cpu_seconds += other.client_cpu_seconds
        if self.database_cpu_seconds is None or other.database_cpu_seconds is None:
            self.database_cpu_seconds = None
        else:
            self.database_cpu_seconds += other.database_cpu_seconds

    def error(self, kind: str, sample: str) -> None:
        self.errors[kind] += 1
        self.error_samples.setdefault(kind, sample[:ERROR_SAMPLE_CHARS])


def post(connection_: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    connection_.request("POST", path, body=body, headers=headers)
    response = connection_.getresponse()
    return response.status, response.read()


def _client_loop(
    *, port: int, path: str, headers: dict[str, str], bodies: Sequence[bytes], offset: int, stride: int,
    duration: float, start: threading.Barrier, tally: LoadTally,
) -> None:
    """POST to `path` back to back on one kept-alive connection until `duration` has passed."""
    # http.client reopens the connection by itself if the server closes it (gunicorn's
    # keep-alive timeout); a request that fails closes it so that the next one reconnects.
    connection_ = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_SECONDS)
    index = offset
    start.wait()
    deadline = time.perf_counter() + duration
    try:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                status, payload = post(connection_, path, bodies[index % len(bodies)], headers)
            except (OSError, http.client.HTTPException) as error:
                connection_.close()
                tally.error(type(error).__name__, str(error))
            else:
                if status == 200:
                    tally.latencies.append(time.perf_counter() - began)
                else:
                    tally.error(str(status), payload.decode(errors="replace"))
            index += stride
    finally:
        connection_.close()


def load_run(
    *, port: int, path: str, headers: dict[str, str], bodies: Sequence[bytes], clients: int, duration: float
) -> LoadTally:
    """Run `clients` concurrent clients against `path` for `duration` seconds."""
    tallies = [LoadTally() for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    shared = {"port": port, "path": path, "headers": headers, "bodies": bodies, "stride": clients,
              "duration": duration}
    threads = [
        threading.Thread(
            target=_client_loop, kwargs={**shared, "offset": number, "start": start, "tally": tally}, daemon=True
        )
        for number, tally in enumerate(tallies)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    total = LoadTally()
    for tally in tallies:
        total.add(tally)
    total.seconds = time.perf_counter() - began
    return total

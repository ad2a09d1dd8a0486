"""`manage.py serve`: the web server and the job worker as one foreground command.

Production mode runs gunicorn; `--reload` runs Django's autoreloading development
server instead. Unless `--no-worker` is given, a django-q2 `qcluster` runs beside it,
so training jobs queued by the API are picked up without a second terminal.

Both run as child processes, each in its own process group: this command decides how
each is stopped (a terminal's Ctrl-C would otherwise reach them all at once, in an order
we don't control), and a whole group can be killed if a child will not stop in time.
If the web server dies on its own the job worker is stopped too and the command fails,
so a supervisor (Docker, systemd) sees the service as down instead of half-running. If
the job worker dies (killed, out of memory, its Redis unreachable) the API keeps
serving, since predictions do not need the queue: the worker's reason is logged and it
is started again after a pause that doubles while it keeps failing. Before the worker
first starts, jobs lost with an earlier worker are queued again or ended (the reaper).

Past the ~400 lines of the README's module rule on purpose: the supervision of the two
processes (start order, signals, restarts, shutdown) is one state machine, read in one place.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from monitoring.services.schedule import monitoring_schedule_ensure, source_sync_schedule_ensure
from training.services.reaper import training_jobs_reap
from training.services.schedule import job_reaper_schedule_ensure
from training.services.sources import data_sources_load_settings

# How often the supervision loop looks at its children; short enough that a crash or a
# signal is acted on at once, long enough to cost nothing.
POLL_SECONDS = 0.2
# Time a child gets to stop on its own before its whole process group is killed. Below
# Docker's default 10 s stop grace period so that our own clean-up runs first.
DEFAULT_STOP_TIMEOUT_SECONDS = 8.0
NATIVE_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# A job worker that exits is started again after a pause: 1 s, doubling while it keeps
# failing soon after its start (a broker that stays down), at most a minute; back to
# 1 s once a worker ran a minute (it was healthy, something else killed it).
RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 60.0
RESTART_RESET_AFTER_SECONDS = 60.0


@dataclass
class Child:
    """One supervised child process, the leader of its own process group."""

    name: str
    argv: list[str]
    # Django's autoreloader runs the server in a grandchild and dies on SIGTERM without
    # passing it on; only a SIGINT to the whole group (what a terminal's Ctrl-C does)
    # stops both. Gunicorn and qcluster instead stop their own workers in order, so
    # they are signalled through their leader only.
    interrupt_group: bool = False
    # Variables this child gets on top of the shared environment.
    env: dict[str, str] = field(default_factory=dict)
    # Started again when it exits on its own, instead of stopping the service.
    restartable: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0
    next_restart_delay: float = RESTART_FIRST_SECONDS
    # Set once the group was killed after the leader exited: its id may belong to
    # someone else by now.
    group_cleared: bool = False

    def start(self, env: dict[str, str], cwd: Path) -> None:
        self.started_at = time.monotonic()
        self.group_cleared = False
        self.process = subprocess.Popen(
            self.argv,
            env={**env, **self.env},
            cwd=cwd,
            # No child reads input; a child that touched the terminal from outside the
            # foreground process group would be stopped by SIGTTIN/SIGTTOU.
            stdin=subprocess.DEVNULL,
            process_group=0,
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def poll(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def request_stop(self, signum: int) -> None:
        """Ask the child to stop; it may take a while (gunicorn finishes open requests)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            if self.interrupt_group:
                os.killpg(self.pid, signal.SIGINT)
            else:
                self.process.send_signal(signum)
        except ProcessLookupError:  # exited between the poll and the signal
            pass

    def kill_group(self) -> None:
        """SIGKILL everything left in the child's process group.

        Also run after a clean exit: a worker orphaned by its parent would otherwise keep
        the port or the job queue busy. While any member is alive the group id cannot
        belong to anyone else (Linux does not reuse a pid still in use as a process-group
        id); once the group is empty the call fails harmlessly.
        """
        if self.process is None or self.group_cleared:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # group already empty
            pass
        if self.process.poll() is not None:
            self.group_cleared = True

    def restart_delay(self) -> float:
        """The pause before starting it again after an exit now; doubles for the next one."""
        if time.monotonic() - self.started_at >= RESTART_RESET_AFTER_SECONDS:
            self.next_restart_delay = RESTART_FIRST_SECONDS
        delay = self.next_restart_delay
        self.next_restart_delay = min(delay * 2, RESTART_MAX_SECONDS)
        return delay


def exit_description(code: int) -> str:
    """`exit code 1`, or `killed by SIGKILL` for a child a signal ended."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def static_files_ensure() -> None:
    """Collect the static files once (the admin's and the API docs', hashed and compressed).

    WhiteNoise serves them in every mode; with manifest storage nothing renders before
    they are collected. After upgrading packages, run `manage.py collectstatic` again.
    """
    storage = settings.STORAGES["staticfiles"]["BACKEND"]
    if "Manifest" in storage and not (Path(settings.STATIC_ROOT) / "staticfiles.json").exists():
        call_command("collectstatic", interactive=False, verbosity=0)


def serving_thread_env() -> dict[str, str]:
    """One native thread (OpenMP, BLAS) per serving process, unless the operator chose.

    Every scikit-learn prediction would otherwise start one OpenMP thread per core in
    every worker: on 2 cores, 2 workers × 2 threads plus the clients fought over the
    cores and 8 concurrent clients got 15 answers a second instead of 100. The job
    worker keeps the machine's defaults: training parallelism is its own setting.
    """
    count = str(settings.LEADML_SERVING_NATIVE_THREADS)
    return {name: os.environ.get(name, count) for name in NATIVE_THREAD_VARIABLES}


def _options_check(*, port: int, workers: int, threads: int, timeout: int, stop_timeout: float) -> None:
    """Refuse impossible options before anything starts, naming the option and its value."""
    if not 0 < port < 65536:
        raise CommandError(f"--port must be between 1 and 65535, not {port}.")
    if workers < 1:
        raise CommandError(f"--workers must be at least 1, not {workers}.")
    if threads < 1:
        raise CommandError(f"--threads must be at least 1, not {threads}.")
    if timeout < 1:
        raise CommandError(f"--timeout must be at least 1, not {timeout}.")
    if stop_timeout <= 0:
        raise CommandError("--stop-timeout must be positive.")


class Command(BaseCommand):
    help = (
        "Serve the API (gunicorn, or Django's autoreloading server with --reload) and run "
        "the job worker (qcluster) beside it, in the foreground."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Signals received so far, counted so that a second Ctrl-C can mean "stop now".
        self._signals: list[int] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.HOST, help="Address to bind (default: settings.HOST).")
        parser.add_argument("--port", type=int, default=settings.PORT, help="Port to bind (default: settings.PORT).")
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.WORKERS,
            help="Gunicorn worker processes (default: settings.WORKERS; ignored with --reload).",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=settings.THREADS,
            help="Threads per gunicorn worker (default: settings.THREADS).",
        )
        parser.add_argument(
            "--timeout",
            type=int,
            default=settings.REQUEST_TIMEOUT_SECONDS,
            help="Seconds before gunicorn restarts a worker whose main loop is stuck (default: %(default)s).",
        )
        parser.add_argument(
            "--access-log",
            action=argparse.BooleanOptionalAction,
            default=settings.LEADML_ACCESS_LOG,
            help="Gunicorn's access log, one line per request on stdout (default: LEADML_ACCESS_LOG).",
        )
        parser.add_argument(
            "--reload",
            action="store_true",
            help="Development: Django's runserver, restarting on code changes, instead of gunicorn.",
        )
        parser.add_argument("--no-worker", action="store_true", help="Do not start the job worker (qcluster).")
        parser.add_argument(
            "--dev",
            action="store_true",
            help="Development: DEBUG on (Django's error pages). Never on a machine others can reach.",
        )
        parser.add_argument(
            "--stop-timeout",
            type=float,
            default=DEFAULT_STOP_TIMEOUT_SECONDS,
            help="Seconds the children get to stop on their own before they are killed (default: %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host: str = options["host"]
        port: int = options["port"]
        workers: int = options["workers"]
        threads: int = options["threads"]
        timeout: int = options["timeout"]
        reload: bool = options["reload"]
        with_worker: bool = not options["no_worker"]
        self._dev = bool(options["dev"])
        stop_timeout: float = options["stop_timeout"]
        access_log: bool = options["access_log"]
        _options_check(port=port, workers=workers, threads=threads, timeout=timeout, stop_timeout=stop_timeout)

        # IPv6 literals need brackets in "host:port" for both gunicorn and runserver.
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        manage_py = str(Path(settings.BASE_DIR) / "manage.py")
        web = (
            Child("runserver", [sys.executable, manage_py, "runserver", address], interrupt_group=True)
            if reload
            else Child("gunicorn", self._gunicorn_argv(address, workers, threads, timeout, stop_timeout, access_log))
        )
        web.env = serving_thread_env()
        children = [web]
        if with_worker:
            children.append(Child("qcluster", [sys.executable, manage_py, "qcluster"], restartable=True))
            self._worker_prepare()
        static_files_ensure()

        failed: Child | None = None
        # Installed before any child starts, so a signal arriving during start-up is not
        # lost (or fatal to us alone): the loop below sees it and stops what was started.
        previous_handlers = self._install_signal_handlers()
        try:
            env = self._child_env()
            for child in children:
                child.start(env, Path(settings.BASE_DIR))
            self._serving_announce(address, reload=reload, workers=workers, threads=threads, with_worker=with_worker)
            failed = self._supervise(children, env, Path(settings.BASE_DIR))
        finally:
            # Also reached on errors (e.g. the second child failing to start): never leave
            # a child behind.
            self._stop_all(children, self._forwarded_signal(), stop_timeout)
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)

        if failed is not None:
            code = failed.poll()
            raise CommandError(
                f"{failed.name} exited unexpectedly (exit code {code}); stopped the rest.",
                # Keep the child's own failure code when it has one; an unexpected clean
                # exit is still a failure of the service.
                returncode=code if code and code > 0 else 1,
            )

    def _worker_prepare(self) -> None:
        """Before the job worker starts: its schedules exist, the configured data sources
        are loaded, and jobs an earlier worker lost are queued again or ended."""
        # The worker's scheduler evaluates retraining triggers and reaps lost jobs at
        # the configured intervals.
        monitoring_schedule_ensure()
        job_reaper_schedule_ensure()
        source_sync_schedule_ensure()
        data_sources_load_settings()
        self._reap_lost_jobs()

    def _serving_announce(self, address: str, *, reload: bool, workers: int, threads: int, with_worker: bool) -> None:
        """One line saying where and how the service runs (the children are started by
        then), flushed so that their own output cannot overtake it."""
        server = (
            "runserver, autoreload"
            if reload
            else f"gunicorn, {workers} worker{'s' * (workers > 1)} × {threads} thread{'s' * (threads > 1)}"
        )
        job_worker = "running (qcluster)" if with_worker else "not started (--no-worker)"
        mode = "; DEBUG on (--dev)" if self._dev or settings.DEBUG else ""
        self.stdout.write(f"leadml serving on http://{address}/ ({server}); job worker {job_worker}{mode}")
        # Children write to the same stdout; without a flush this line could appear
        # after theirs when stdout is a pipe (Docker logs, CI).
        self.stdout.flush()

    def _gunicorn_argv(
        self, address: str, workers: int, threads: int, timeout: int, stop_timeout: float, access_log: bool
    ) -> list[str]:
        argv = [
            sys.executable,  # `-m gunicorn` uses this interpreter's packages, whatever PATH says
            "-m",
            "gunicorn",
            "leadml.wsgi:application",
            "--bind",
            address,
            "--workers",
            str(workers),
            # Threaded workers: a request waiting (a synchronous /train polling its job, the
            # database) holds a thread, not the process, and connections are kept alive.
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--keep-alive",
            "5",
            "--timeout",
            str(timeout),
            # Gunicorn's own grace period on SIGTERM must end before ours, or we would
            # SIGKILL it while it is still shutting down in order.
            "--graceful-timeout",
            str(max(1, int(stop_timeout) - 1)),
            "--error-logfile",
            "-",
            "--log-level",
            settings.LOG_LEVEL.lower(),
            "--chdir",
            str(settings.BASE_DIR),
            # Gunicorn's control socket lives at one fixed path in $HOME: two servers on
            # one machine (parallel tests, several ports) would fight over it, and an
            # unprivileged container user may have no writable home. Nothing uses it.
            "--no-control-socket",
        ]
        if access_log:
            argv += ["--access-logfile", "-"]
        # The worker heartbeat file is written every few seconds; on Docker's overlay
        # filesystem that can block long enough to get healthy workers killed.
        if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
            argv += ["--worker-tmp-dir", "/dev/shm"]
        return argv

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # `--settings` only changes this process; children must load the same settings.
        env["DJANGO_SETTINGS_MODULE"] = settings.SETTINGS_MODULE
        # Logs should reach `docker logs` as they happen, not when a buffer fills.
        env["PYTHONUNBUFFERED"] = "1"
        if getattr(self, "_dev", False):
            env["DEBUG"] = "1"
        return env

    def _install_signal_handlers(self) -> dict[int, Any]:
        """Turn SIGINT/SIGTERM/SIGHUP into a recorded request to stop.

        The handler only records: stopping involves waiting, which must not happen
        inside a signal handler (it could interrupt the supervision loop mid-step).
        """

        def record(signum: int, frame: FrameType | None) -> None:
            self._signals.append(signum)

        previous: dict[int, Any] = {}
        # SIGHUP (closed terminal) would otherwise kill only this process and leave the
        # children, which are in other process groups, running.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, record)
        return previous

    def _forwarded_signal(self) -> int:
        # SIGINT asks for a quick stop and SIGTERM for a graceful one (gunicorn lets open
        # requests finish); keep the caller's choice. SIGHUP means "reload" to gunicorn,
        # so a closed terminal is passed on as SIGTERM.
        if self._signals and self._signals[0] == signal.SIGINT:
            return signal.SIGINT
        return signal.SIGTERM

    def _reap_lost_jobs(self) -> None:
        """Queue again or end the jobs an earlier worker lost, before a new one starts."""
        try:
            reaped = training_jobs_reap()
        except Exception as error:  # never a reason not to serve: the worker's schedule tries again
            self.stderr.write(f"Could not look for lost jobs: {type(error).__name__}: {error}")
            return
        for outcome in reaped:
            self.stdout.write(f"job {outcome.job_id} {outcome.action}: {outcome.reason}")

    def _supervise(self, children: list[Child], env: dict[str, str], cwd: Path) -> Child | None:
        """Wait for a stop signal (returns None) or a vital child's exit (returns that child).

        A restartable child that exits is started again after its backoff, while the
        others keep running.
        """
        restart_at: dict[str, float] = {}
        while not self._signals:
            now = time.monotonic()
            for child in children:
                if child.name in restart_at:
                    if now >= restart_at[child.name]:
                        del restart_at[child.name]
                        child.start(env, cwd)
                        self.stderr.write(f"{child.name} restarted (pid {child.pid}).")
                    continue
                code = child.poll()
                if code is None:
                    continue
                if not child.restartable:
                    return child
                # Its leader is gone but its own children may not be (a qcluster
                # killed with SIGKILL leaves its sentinel and pool running).
                child.kill_group()
                assert child.process is not None
                child.process.wait()
                delay = child.restart_delay()
                self.stderr.write(
                    f"{child.name} exited unexpectedly ({exit_description(code)}) after "
                    f"{now - child.started_at:.0f} s; restarting it in {delay:g} s."
                )
                restart_at[child.name] = now + delay
            time.sleep(POLL_SECONDS)
        return None

    def _stop_all(self, children: list[Child], signum: int, stop_timeout: float) -> None:
        """Stop every child still running: signal all, wait together, then kill the rest.

        All are signalled before waiting on any, so the total time is one timeout, not
        one per child. A further signal while waiting (a second Ctrl-C) kills at once.
        """
        signals_before = len(self._signals)
        for child in children:
            child.request_stop(signum)
        deadline = time.monotonic() + stop_timeout
        while any(child.poll() is None for child in children):
            if time.monotonic() >= deadline or len(self._signals) > signals_before:
                names = ", ".join(child.name for child in children if child.poll() is None)
                self.stderr.write(f"Killing {names}: not stopped in time.")
                break
            time.sleep(POLL_SECONDS / 2)
        for child in children:
            child.kill_group()
            if child.process is not None:
                # Reap it, so no zombie outlives us; after SIGKILL this returns at once.
                child.process.wait()

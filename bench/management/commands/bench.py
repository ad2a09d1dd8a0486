"""`manage.py bench`: scoring cost over the bare pipeline in-process, and over the HTTP floor.

    OMP_NUM_THREADS=1 python manage.py bench                      # 50,000 demo leads, HTTP at 1 and 8 clients
    python manage.py bench --dataset bank --duration 5 --json var/bench.json
    python manage.py bench --rows 2000 --skip-http --repeat 50    # a quick look, no server

Uses (and first empties) the tenant `bench`. The logic lives in `bench.scoring` (and the modules it names).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bench.report import report_lines
from bench.scoring import run_bench
from bench.types import BENCH_TENANT, BenchConfig, BenchError
from leadml.api.serving import serving_process_tune


def _client_counts(value: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError as error:
        raise CommandError(f"--clients takes comma-separated integers, not {value!r}") from error
    if not counts or min(counts) < 1:
        raise CommandError("--clients needs at least one count, each 1 or more")
    return counts


class Command(BaseCommand):
    help = "Benchmark scoring (bare pipeline, scoring service, HTTP) on a freshly trained lead model."

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = BenchConfig()
        parser.add_argument("--rows", type=int, default=defaults.rows, help="Training rows (default: %(default)s).")
        parser.add_argument("--dataset", choices=("demo", "bank"), default=defaults.dataset,
                            help="demo: synthetic leads; bank: UCI bank marketing from ../shared/datasets.")
        parser.add_argument("--batch-rows", type=int, default=defaults.batch_rows,
                            help="Records per batch call (default: %(default)s).")
        parser.add_argument("--repeat", type=int, default=defaults.repeat,
                            help="Single-record calls timed, bare and service (default: %(default)s).")
        parser.add_argument("--batch-runs", type=int, default=defaults.batch_runs,
                            help="Batch calls timed; the median is reported (default: %(default)s).")
        parser.add_argument("--duration", type=float, default=defaults.duration,
                            help="Seconds per side of each HTTP comparison (default: %(default)s).")
        parser.add_argument("--clients", default=",".join(map(str, defaults.clients)),
                            help="Concurrent HTTP client counts (default: %(default)s).")
        parser.add_argument("--workers", type=int, default=None, help="Gunicorn workers (default: settings.WORKERS).")
        parser.add_argument("--skip-http", action="store_true", help="Measure only in-process.")
        parser.add_argument("--skip-access-log-check", action="store_true",
                            help="Do not compare the floor with gunicorn's access log on and off (a second server).")
        parser.add_argument("--tenant", default=BENCH_TENANT,
                            help="Tenant to use; its data is deleted first, so it must start with 'bench'.")
        parser.add_argument("--json", dest="json_path", help="Also write the figures as JSON to this path.")

    def handle(self, *args: Any, **options: Any) -> None:
        positive = {name: options[name] for name in ("rows", "batch_rows", "repeat", "batch_runs", "duration")}
        for name, value in positive.items():
            if value <= 0:
                raise CommandError(f"--{name.replace('_', '-')} must be positive")
        config = BenchConfig(
            **positive,
            dataset=options["dataset"],
            clients=_client_counts(options["clients"]),
            skip_http=options["skip_http"],
            access_log_check=not options["skip_access_log_check"],
            workers=options["workers"],
            tenant=options["tenant"],
        )
        # The in-process figures are taken as a serving process would score.
        serving_process_tune()
        try:
            figures = run_bench(config, log=self.stderr.write)
        except BenchError as error:
            raise CommandError(str(error)) from error
        # The figures first: a long run's measurements survive a failure to render them.
        if options["json_path"]:
            Path(options["json_path"]).write_text(json.dumps(figures, indent=2, default=str) + "\n")
            self.stderr.write(f"Figures written to {options['json_path']}")
        self.stdout.write("\n".join(report_lines(figures)))

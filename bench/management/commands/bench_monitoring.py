"""`manage.py bench_monitoring`: GET /monitoring on a large prediction log (target: 1,000,000 in under 2 s).

    python manage.py bench_monitoring                                   # 1,000,000 predictions, 20,000 outcomes
    python manage.py bench_monitoring --predictions 20000 --outcomes 1000 --repeat 3   # a quick look
    python manage.py bench_monitoring --fresh --json var/bench-monitoring.json

Uses the tenant `bench-monitoring`; its data is kept and reused while the counts asked
for match (`--fresh` deletes and rebuilds it). The logic lives in `bench.monitoring`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bench.monitoring import monitoring_report_lines, run_monitoring_bench
from bench.types import BenchError, MonitoringBenchConfig


class Command(BaseCommand):
    help = (
        "Benchmark GET /monitoring: store N predictions of a bench lead model over the last days "
        "(reused on reruns), then time the report for several windows, in-process and through the API."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = MonitoringBenchConfig()
        parser.add_argument("--predictions", type=int, default=defaults.predictions,
                            help="Predictions stored for the bench model (default: %(default)s).")
        parser.add_argument("--outcomes", type=int, default=defaults.outcomes,
                            help="Scored leads given an outcome (default: %(default)s).")
        parser.add_argument("--training-rows", type=int, default=defaults.training_rows,
                            help="Demo leads the bench model is trained on (default: %(default)s).")
        parser.add_argument("--chunk-rows", type=int, default=defaults.chunk_rows,
                            help="Predictions inserted per transaction (default: %(default)s).")
        parser.add_argument("--days", type=int, default=defaults.days,
                            help="Days the predictions are spread over, up to now (default: %(default)s).")
        parser.add_argument("--repeat", type=int, default=defaults.repeat,
                            help="Timed calls per window, service and HTTP each (default: %(default)s).")
        parser.add_argument("--fresh", action="store_true", help="Delete and rebuild the data even if it matches.")
        parser.add_argument("--tenant", default=defaults.tenant,
                            help="Tenant to use; its data may be deleted, so it must start with 'bench'.")
        parser.add_argument("--json", dest="json_path", help="Also write the figures as JSON to this path.")

    def handle(self, *args: Any, **options: Any) -> None:
        numbers = ("predictions", "outcomes", "training_rows", "chunk_rows", "days", "repeat")
        for name in numbers:
            if options[name] <= 0:
                raise CommandError(f"--{name.replace('_', '-')} must be positive")
        config = MonitoringBenchConfig(
            **{name: options[name] for name in numbers}, fresh=options["fresh"], tenant=options["tenant"]
        )
        try:
            figures = run_monitoring_bench(config, log=self.stderr.write)
        except BenchError as error:
            raise CommandError(str(error)) from error
        self.stdout.write("\n".join(monitoring_report_lines(figures)))
        if options["json_path"]:
            Path(options["json_path"]).write_text(json.dumps(figures, indent=2, default=str) + "\n")
            self.stderr.write(f"Figures written to {options['json_path']}")

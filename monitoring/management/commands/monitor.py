"""`manage.py monitor`: the monitoring summary of each active model, as a table."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from leadml.ml.types import MODEL_TYPES
from monitoring.services.report import monitoring_report, window_resolve
from monitoring.services.retrain import active_versions

COLUMNS = (
    "tenant", "model_type", "model", "predictions", "outcomes", "drifted", "pred_drift",
    "missing_flags", "metric", "training", "live", "estimated", "fired",
)


class Command(BaseCommand):
    help = "Print the monitoring summary (drift, quality, performance, triggers) of each active model."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Only this tenant (user_id).")
        parser.add_argument("--model-type", choices=MODEL_TYPES, help="Only this model type.")
        parser.add_argument("--last", type=int, help="Window: the last N predictions (default: the last days).")

    def handle(self, *args: Any, **options: Any) -> None:
        versions = list(active_versions(tenant=options["tenant"], model_type=options["model_type"]))
        if not versions:
            raise CommandError("no active model matches (check --tenant / --model-type)")
        if options["last"] is not None and options["last"] < 1:
            raise CommandError("--last must be at least 1")
        rows = [COLUMNS]
        for version in versions:
            window = window_resolve(version=version, since=None, until=None, last=options["last"])
            rows.append(_row(version, monitoring_report(version=version, window=window)))
        widths = [max(len(row[index]) for row in rows) for index in range(len(COLUMNS))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _row(version: Any, report: dict[str, Any]) -> tuple[str, ...]:
    metric = version.main_metric[0]
    drift = report["data_drift"]
    features = drift.get("features") or []
    drifted = [feature["name"] for feature in features if feature.get("drifted")]
    flagged = [item["name"] for item in report["data_quality"] if item.get("flagged")]
    performance = report["performance"]
    estimated = (performance["estimated"] or {}).get(metric)
    fired = [item["name"] for item in report["triggers"] if item["fired"]]
    return (
        version.tenant,
        version.model_type,
        f"{version.name} v{version.version}",
        str(report["window"]["predictions"]),
        str(report["window"]["with_outcomes"]),
        f"{len(drifted)}/{len(features)}" + (" DATASET" if drift.get("dataset_drift") else ""),
        "yes" if report["prediction_drift"].get("drifted") else "no",
        _names(flagged),
        metric,
        _number(performance["training"].get(metric)),
        _number(performance["live"].get(metric)),
        _number(estimated),
        _names(fired),
    )


def _names(names: list[str], shown: int = 3) -> str:
    if not names:
        return "-"
    more = f" +{len(names) - shown}" if len(names) > shown else ""
    return ",".join(names[:shown]) + more


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"

"""`manage.py retrain`: evaluate retraining triggers and retrain what is due."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from leadml.ml.types import MODEL_TYPES
from monitoring.services.retrain import active_versions, retrain_evaluate


class Command(BaseCommand):
    help = (
        "Evaluate the retraining triggers of every active model (or the chosen ones) and queue a retrain "
        "for each model that is due; prints one line per model saying what it did and why."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Only this tenant (user_id).")
        parser.add_argument("--model-type", choices=MODEL_TYPES, help="Only this model type.")
        parser.add_argument("--force", action="store_true", help="Retrain even when no trigger fired.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would happen; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        versions = list(active_versions(tenant=options["tenant"], model_type=options["model_type"]))
        if not versions:
            raise CommandError("no active model matches (check --tenant / --model-type)")
        failed = 0
        for version in versions:
            decision = retrain_evaluate(
                version=version, force=options["force"], dry_run=options["dry_run"], actor="manage.py retrain"
            )
            failed += decision.action == "failed"
            self.stdout.write(decision.line())
        if failed:
            raise CommandError(f"{failed} model(s) could not be retrained (see above)")

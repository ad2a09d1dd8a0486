"""`manage.py source_sync`: read terminal status changes from the data sources and record them as outcomes."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from monitoring.services.source_sync import source_sync_all
from training.services.sources import data_sources_load_settings


class Command(BaseCommand):
    help = (
        "For every enabled data source with a changes query, read the leads whose status became terminal since "
        "the last sync and record them as outcomes of their predictions (as POST /outcomes does); one line per "
        "source and tenant. README, \"Training from the CRM's database\"."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Only this tenant (user_id).")
        parser.add_argument("--dry-run", action="store_true", help="Read and count; record nothing, move no mark.")

    def handle(self, *args: Any, **options: Any) -> None:
        data_sources_load_settings()
        results = source_sync_all(tenant=options["tenant"], dry_run=options["dry_run"])
        if not results:
            self.stdout.write("no data source to sync (none enabled with a changes query, or no lead predictions)")
        for result in results:
            self.stdout.write(result.line())
        failed = [result for result in results if result.status == "failed"]
        if failed:
            raise CommandError(f"{len(failed)} sync(s) failed (see above)")

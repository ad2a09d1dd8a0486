"""`manage.py source_check NAME`: connect to a data source and run its query for one tenant with LIMIT 5."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.models import DataSource
from training.services.sources import SourceError, data_sources_load_settings, source_rows_read

PREVIEW_ROWS = 5


class Command(BaseCommand):
    help = (
        "Connect to a data source (read only), run its query for one tenant with LIMIT 5 and print the columns, "
        "how many values each has and the target's values. The URL is shown masked."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The data source's name.")
        parser.add_argument(
            "--tenant", help="The tenant (user_id) whose rows to read; default: the last one that trained from it."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        data_sources_load_settings()
        source = DataSource.objects.filter(name=options["name"]).first()
        if source is None:
            names = ", ".join(DataSource.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no data source named {options['name']!r} (configured: {names})")
        tenant = options["tenant"] or self._some_tenant(source)
        if tenant is None:
            raise CommandError("give --tenant: no tenant has trained from this source yet")
        self.stdout.write(
            f"{source.name}: {source.masked_url} ({source.model_type}, {source.kind}, "
            f"{'enabled' if source.enabled else 'disabled'}); tenant {tenant}"
        )
        try:
            read = source_rows_read(source=source, tenant=tenant, limit=PREVIEW_ROWS)
        except SourceError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"{len(read.rows)} rows (LIMIT {PREVIEW_ROWS}), {len(read.columns)} columns:")
        for column in read.columns:
            filled = sum(row[column] is not None for row in read.rows)
            self.stdout.write(f"  {column}: {filled} of {len(read.rows)} filled")
        if source.kind == DataSource.Kind.RECORDS and source.target_column:
            if source.target_column not in read.columns:
                raise CommandError(f"the query returns no target column {source.target_column!r}")
            values = sorted({str(row[source.target_column]) for row in read.rows})
            self.stdout.write(
                f"target {source.target_column}: {', '.join(values) or 'no values'} (positive: "
                f"{source.positive_values}, negative: {source.negative_values}, others open)"
            )
        if source.changes_query:
            self.stdout.write("changes_query: set (the outcome sync reads it; `manage.py source_sync --dry-run` runs it)")

    def _some_tenant(self, source: DataSource) -> str | None:
        """A tenant that trained from this source before (training knows no predictions)."""
        return source.datasets.order_by("-created_at").values_list("tenant", flat=True).first()

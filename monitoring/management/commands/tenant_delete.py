"""`manage.py tenant_delete USER_ID --yes`: delete everything a tenant has in the service."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from monitoring.services.tenants import tenant_delete


class Command(BaseCommand):
    help = (
        "Delete a tenant's models (and their artifacts), datasets, jobs, predictions, outcomes, events, "
        "trigger settings and webhook, and revoke its API tokens. Cannot be undone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user_id", help="The tenant (user_id) to delete.")
        parser.add_argument("--yes", action="store_true", help="Confirm: without it nothing is deleted.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = options["user_id"].strip()
        if not tenant:
            raise CommandError("user_id must not be blank")
        if not options["yes"]:
            raise CommandError(f"this deletes everything of user_id {tenant!r}; run again with --yes to confirm")
        counts = tenant_delete(tenant=tenant)
        self.stdout.write(f"deleted user_id {tenant!r}: " + ", ".join(f"{key} {value}" for key, value in counts.items()))

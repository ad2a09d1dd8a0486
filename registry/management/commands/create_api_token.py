"""Create an API token and print its key once (only its hash is stored)."""
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from leadml.api.errors import ApplicationError
from registry.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token scoped to one tenant (--user-id) or a service token (--service)."

    def add_arguments(self, parser: CommandParser) -> None:
        scope = parser.add_mutually_exclusive_group(required=True)
        scope.add_argument("--user-id", help="Tenant the token may act for.")
        scope.add_argument("--service", action="store_true", help="A token that may act for any tenant (the CRM).")
        parser.add_argument("--name", default="", help="A label to recognise the token by.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = options["user_id"]
        name = options["name"] or ("service" if options["service"] else f"tenant {tenant}")
        try:
            token, key = api_token_create(name=name, tenant=tenant, is_service=options["service"])
        except ApplicationError as error:
            raise CommandError(error.message) from error
        scope = "service (any tenant)" if token.is_service else f"user_id {token.tenant}"
        self.stderr.write(f"Created token '{token.name}' for {scope}. The key is shown once:")
        self.stdout.write(key)

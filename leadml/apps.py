from django.apps import AppConfig


class LeadmlConfig(AppConfig):
    name = "leadml"
    verbose_name = "leadml"

    def ready(self) -> None:
        from leadml.api import schema  # noqa: F401  # registers the OpenAPI extension

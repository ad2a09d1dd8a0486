from django.apps import AppConfig


class OversightConfig(AppConfig):
    """The admin as the oversight console: model cards, dashboard, actions (no models of its own)."""

    name = "oversight"
    verbose_name = "Oversight"

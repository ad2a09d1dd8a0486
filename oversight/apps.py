from django.apps import AppConfig


class OversightConfig(AppConfig):
    """The whole admin console: every app's models registered (oversight/admin/), model cards, dashboard, actions; no models of its own."""

    name = "oversight"
    verbose_name = "Oversight"

from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo tenant: `manage.py demo_setup`, and the synthetic data it is made of (no models of its own)."""

    name = "demo"
    verbose_name = "Demo"

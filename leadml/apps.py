from django.apps import AppConfig


class LeadmlConfig(AppConfig):
    name = "leadml"
    verbose_name = "leadml"

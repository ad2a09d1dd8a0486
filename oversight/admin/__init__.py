"""The whole admin console: every domain app's models are registered here, none in the apps.

Django's admin autodiscovery imports `oversight.admin`, which imports these modules: `site`
(the admin site's index and titles) and one module per domain app registering its models.
The admin URLs and their names (`admin:registry_modelversion_change`, ...) follow each
model's app label, so they are the same as when the apps registered their own models.
Oversight sits on top of the import graph: it may import any domain app, none imports it.
"""
from oversight.admin import monitoring, predictions, registry, site, training

__all__ = ["monitoring", "predictions", "registry", "site", "training"]

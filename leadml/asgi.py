"""ASGI entry point, loaded once in every serving process."""
import os

from django.core.asgi import get_asgi_application

from leadml.api.serving import serving_process_tune

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadml.settings.base")
application = get_asgi_application()
serving_process_tune()

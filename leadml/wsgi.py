"""WSGI entry point (gunicorn leadml.wsgi)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadml.settings.base")
application = get_wsgi_application()

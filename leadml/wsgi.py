"""WSGI entry point (gunicorn leadml.wsgi)."""
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from threadpoolctl import threadpool_limits

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadml.settings.base")
application = get_wsgi_application()
# Also for servers other than `manage.py serve`, which sets the variables before start:
# one native thread per serving process (see leadml.management.commands.serve).
threadpool_limits(settings.LEADML_SERVING_NATIVE_THREADS)

"""WSGI entry point (gunicorn leadml.wsgi), loaded once in every serving process."""
import os

from django.core.wsgi import get_wsgi_application

from leadml.api.serving import chunked_bodies_read, serving_process_tune

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadml.settings.base")
application = chunked_bodies_read(get_wsgi_application())
serving_process_tune()  # also for servers other than `manage.py serve`

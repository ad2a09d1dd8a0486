"""WSGI entry point (gunicorn leadml.wsgi), loaded once in every serving process."""
import gc
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from threadpoolctl import threadpool_limits

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadml.settings.base")
application = get_wsgi_application()
# Also for servers other than `manage.py serve`, which sets the variables before start:
# one native thread per serving process (see leadml.management.commands.serve).
threadpool_limits(settings.LEADML_SERVING_NATIVE_THREADS)
# The cyclic garbage collector: what the process loaded so far (Django, scikit-learn,
# numpy, pandas) is never garbage, so it is frozen out of the collections, and the
# youngest generation is collected every LEADML_SERVING_GC_THRESHOLD allocations
# rather than every 700. A 10,000-row batch allocates some millions of objects: with
# Python's defaults a fifth of its time went to collections that found nothing
# (BENCHMARKS.md). 0 keeps Python's defaults.
if settings.LEADML_SERVING_GC_THRESHOLD:
    gc.collect()
    gc.freeze()
    gc.set_threshold(settings.LEADML_SERVING_GC_THRESHOLD, 50, 100)

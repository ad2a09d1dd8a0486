"""What every serving process sets up once the app is loaded (leadml/wsgi.py, asgi.py; the bench).

- One native (OpenMP/BLAS) thread per process: requests are parallel across processes
  and threads already (leadml.management.commands.serve also sets the variables before
  start, for libraries loaded later).
- The cyclic garbage collector: what the process loaded so far (Django, scikit-learn,
  numpy, pandas) is never garbage, so it is frozen out of the collections, and the
  youngest generation is collected every LEADML_SERVING_GC_THRESHOLD allocations rather
  than every 700. A 10,000-row batch allocates millions of objects: with Python's
  defaults about a fifth of its time went to collections that found nothing
  (BENCHMARKS.md). 0 keeps Python's defaults.
"""
from __future__ import annotations

import gc

from django.conf import settings
from threadpoolctl import threadpool_limits


def serving_process_tune() -> None:
    threadpool_limits(settings.LEADML_SERVING_NATIVE_THREADS)
    if settings.LEADML_SERVING_GC_THRESHOLD:
        gc.collect()
        gc.freeze()
        gc.set_threshold(settings.LEADML_SERVING_GC_THRESHOLD, 50, 100)

"""What every serving process sets up once the app is loaded (leadml/wsgi.py, asgi.py; the bench).

- One native (OpenMP/BLAS) thread per process: requests are parallel across processes
  and threads already (leadml.management.commands.serve also sets the variables before
  start, for libraries loaded later).
- The cyclic garbage collector: what the process loaded so far (Django, scikit-learn,
  numpy, pandas) is never garbage, so it is frozen out of the collections
  (LEADML_SERVING_GC_FREEZE). A 10,000-row batch allocates millions of objects, and each
  collection of the oldest generation walked the whole loaded app: about a fifth of the
  batch's time (BENCHMARKS.md). The thresholds stay Python's: raising them measured no
  better once the app is frozen, and would let cyclic garbage linger.
"""
from __future__ import annotations

import gc

from django.conf import settings
from threadpoolctl import threadpool_limits


def serving_process_tune() -> None:
    threadpool_limits(settings.LEADML_SERVING_NATIVE_THREADS)
    if settings.LEADML_SERVING_GC_FREEZE:
        gc.collect()
        gc.freeze()

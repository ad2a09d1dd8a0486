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

And `chunked_bodies_read`, the WSGI wrapper leadml/wsgi.py puts around Django.
"""
from __future__ import annotations

import gc
import io
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from threadpoolctl import threadpool_limits

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def serving_process_tune() -> None:
    threadpool_limits(settings.LEADML_SERVING_NATIVE_THREADS)
    if settings.LEADML_SERVING_GC_FREEZE:
        gc.collect()
        gc.freeze()


def chunked_bodies_read(application: WsgiApp) -> WsgiApp:
    """Let Django read request bodies sent with `Transfer-Encoding: chunked` (no Content-Length).

    Django reads exactly CONTENT_LENGTH bytes, so a chunked body (a Node.js client
    streaming its JSON, say) arrived as an empty one: "model_type: This field is
    required". Where the server has decoded the chunks (gunicorn says so with
    `wsgi.input_terminated`), the body is read here, up to one byte over the body limit,
    and its length handed on; a longer one still gets the limit's 413 from Django.
    """

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            body = environ["wsgi.input"].read() if limit is None else environ["wsgi.input"].read(limit + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return application(environ, start_response)

    return wrapped

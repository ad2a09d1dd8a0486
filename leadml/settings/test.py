"""Settings for the test suite: jobs run inline, artifacts in a throwaway folder."""
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import Q_CLUSTER, STORAGES

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MODEL_DIR = Path(tempfile.mkdtemp(prefix="leadml-test-models-"))
# Static files straight from the apps (no collectstatic before the tests), still through
# WhiteNoise with DEBUG off, as in production.
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STORAGES["models"]["OPTIONS"]["location"] = str(MODEL_DIR)
Q_CLUSTER["sync"] = True

# Tests without a database must be able to clear the cache too; the shared (database)
# cache is exercised by the tests that say so (tests/registry/test_throttle.py).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# A test that imports leadml.wsgi (the fuzzing suite) must not freeze the test process's
# garbage collector: served processes are tested for it (tests/reliability/test_serving_process.py).
LEADML_SERVING_GC_FREEZE = False

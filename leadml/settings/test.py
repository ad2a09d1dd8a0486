"""Settings for the test suite: jobs run inline, artifacts in a throwaway folder."""
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import Q_CLUSTER, STORAGES

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MODEL_DIR = Path(tempfile.mkdtemp(prefix="leadml-test-models-"))
STORAGES["models"]["OPTIONS"]["location"] = str(MODEL_DIR)
Q_CLUSTER["sync"] = True

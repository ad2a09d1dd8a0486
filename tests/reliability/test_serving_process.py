"""A serving process tunes itself when it loads the app (leadml/wsgi.py), whoever starts it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.reliability.processes import BASE_DIR

PROBE = "import gc, json, leadml.wsgi; print(json.dumps({'threshold': gc.get_threshold(), 'frozen': gc.get_freeze_count()}))"


def _probe(tmp_path: Path, **env: str) -> dict[str, object]:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "leadml.settings.base",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'leadml.sqlite3'}",
        "LEADML_VAR_DIR": str(tmp_path),
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_loaded_app_is_frozen_out_of_collections(tmp_path: Path) -> None:
    probed = _probe(tmp_path)
    assert probed["threshold"] == [700, 10, 10]  # Python's
    assert isinstance(probed["frozen"], int) and probed["frozen"] > 10_000  # Django and its apps, at least


def test_the_freeze_can_be_turned_off(tmp_path: Path) -> None:
    probed = _probe(tmp_path, LEADML_SERVING_GC_FREEZE="false")
    assert probed["frozen"] == 0

"""A TypeScript client generated from the schema compiles against what the CRM reads.

openapi-typescript turns the in-process schema into types, and `tsc --strict` checks
typescript/crm.ts (the CRM's reads of every answer) against them. Needs node, npm and
`npm ci` in tests/contract/typescript (`.ci/run` does it); skips without them, unless
LEADML_REQUIRE_NODE=1 makes that a failure.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

TYPESCRIPT_DIR = Path(__file__).resolve().parent / "typescript"
TOOLS = ("openapi-typescript", "tsc")


def _require_node_tools() -> None:
    missing = [program for program in ("node", "npm", "npx") if shutil.which(program) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed"
    elif not all((TYPESCRIPT_DIR / "node_modules" / ".bin" / tool).exists() for tool in TOOLS):
        reason = f"no node_modules in {TYPESCRIPT_DIR}: run `npm ci` there"
    else:
        return
    if os.environ.get("LEADML_REQUIRE_NODE") == "1":
        pytest.fail(f"TypeScript check required (LEADML_REQUIRE_NODE=1) but {reason}")
    pytest.skip(f"TypeScript check skipped: {reason}")


def _run(*command: str) -> None:
    # --no-install: only the pinned tools in node_modules, never a download.
    completed = subprocess.run(
        ["npx", "--no-install", *command], cwd=TYPESCRIPT_DIR, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, f"{' '.join(command)} failed:\n{completed.stdout}\n{completed.stderr}"


def test_generated_types_compile_with_the_fields_the_crm_reads(openapi: dict[str, Any], tmp_path: Path) -> None:
    _require_node_tools()
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(openapi))
    # crm.ts imports "./leadml-api": generate it beside a copy, leaving the checkout untouched.
    shutil.copy(TYPESCRIPT_DIR / "crm.ts", tmp_path / "crm.ts")
    # Fields with a default are optional in requests: without this flag they become required.
    _run("openapi-typescript", str(schema), "--default-non-nullable=false", "-o", str(tmp_path / "leadml-api.d.ts"))
    _run(
        "tsc", "--noEmit", "--strict", "--target", "es2022", "--module", "esnext", "--moduleResolution", "bundler",
        str(tmp_path / "crm.ts"),
    )

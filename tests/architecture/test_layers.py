"""The layers run one way, and each app writes only its own tables (README, "Architecture").

    leadml.ml  <-  leadml.api  <-  registry  <-  training  <-  predictions  <-  monitoring  <-  oversight, bench, demo

A module may import its own package and the layers to its left, never one to its right;
`leadml`'s composition modules (settings, urls, health, serve, wsgi/asgi) may import any.
Both checks read the source (every import, also those inside functions), so a new
upward arrow or a write into another app's table fails here before review.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.apps import apps

ROOT = Path(__file__).resolve().parents[2]
LAYERS: list[set[str]] = [
    {"leadml.ml"},
    {"leadml.api"},
    {"registry"},
    {"training"},
    {"predictions"},
    {"monitoring"},
    {"oversight", "bench", "demo"},
]
# Packages of the top layer may use each other's helpers only in this direction.
SIDEWAYS = {("bench", "demo")}
COMPOSITION = "leadml"
PACKAGES = ["leadml", "registry", "training", "predictions", "monitoring", "oversight", "bench", "demo"]
WRITES = {"create", "bulk_create", "bulk_update", "update_or_create", "get_or_create", "update", "delete"}


def unit_of(module: str) -> str | None:
    """The layer unit a dotted module name belongs to (leadml.ml, leadml.api, an app), else None."""
    parts = module.split(".")
    if parts[0] == "leadml":
        return ".".join(parts[:2]) if len(parts) > 1 and parts[1] in ("ml", "api") else COMPOSITION
    return parts[0] if parts[0] in PACKAGES else None


def layer_of(unit: str) -> int | None:
    return next((index for index, units in enumerate(LAYERS) if unit in units), None)


def source_files() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield module.removesuffix(".__init__"), path


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def upward_imports() -> list[str]:
    found = []
    for module, path in source_files():
        source = unit_of(module)
        if source in (None, COMPOSITION):
            continue
        for line, imported in imports_of(path):
            target = unit_of(imported)
            if target in (None, source) or (source, target) in SIDEWAYS:
                continue
            target_layer = layer_of(target) if target != COMPOSITION else len(LAYERS)
            if target_layer is None or target_layer >= layer_of(source):
                found.append(f"{path.relative_to(ROOT)}:{line}: {source} imports {imported}")
    return found


def foreign_writes() -> list[str]:
    """`Model.objects...create/update/delete(...)` calls on another app's model."""
    owner = {model.__name__: model._meta.app_label for model in apps.get_models() if unit_of(model.__module__)}
    found = []
    for module, path in source_files():
        unit = unit_of(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES):
                continue
            chain = node.func.value
            while isinstance(chain, (ast.Call, ast.Attribute)):
                if isinstance(chain, ast.Attribute) and chain.attr == "objects" and isinstance(chain.value, ast.Name):
                    app = owner.get(chain.value.id)
                    if app is not None and app != unit:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {unit} {node.func.attr}s {app}.{chain.value.id}")
                    break
                chain = chain.func if isinstance(chain, ast.Call) else chain.value
    return found


def test_no_import_runs_upward() -> None:
    assert upward_imports() == []


def test_the_ml_core_and_the_kernel_import_no_app() -> None:
    for module, path in source_files():
        if unit_of(module) in ("leadml.ml", "leadml.api"):
            apps_imported = [name for _, name in imports_of(path) if unit_of(name) not in (None, "leadml.ml", "leadml.api")]
            assert apps_imported == [], module


def test_no_app_writes_another_apps_tables() -> None:
    assert foreign_writes() == []


@pytest.mark.parametrize(
    ("source", "imported", "upward"),
    [
        ("registry.services", "monitoring.models", True),
        ("leadml.ml.train", "registry.models", True),
        ("leadml.api.errors", "leadml.ml.errors", False),
        ("monitoring.services.report", "predictions.models", False),
        ("bench.common", "demo.data", False),
        ("demo.data", "bench.common", True),
    ],
)
def test_the_rule_itself(source: str, imported: str, upward: bool) -> None:
    """The check would catch an arrow the wrong way (a test that cannot fail is no test)."""
    source_unit, target_unit = unit_of(source), unit_of(imported)
    assert source_unit is not None and target_unit is not None
    wrong = (source_unit, target_unit) not in SIDEWAYS and layer_of(target_unit) >= layer_of(source_unit)
    assert wrong is upward

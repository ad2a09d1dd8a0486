"""Where the time goes: an in-process cProfile of what a missed target of `manage.py bench` measures.

`where_the_time_goes` profiles one `/predict` with reasons (PROFILE_CALLS calls) or one
`/predict/batch` through Django's test client, or one `predictions_make` batch, and
follows the heaviest chain of this project's functions down from the view or the
service; a missed error target gets the errors seen, by kind. cProfile makes Python-heavy
parts look heavier than they are: the figures say where to look, not what a request costs.
"""
from __future__ import annotations

import cProfile
import os
import pstats
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.test import Client

from bench.scoring_http import PREDICT_PATH, batch_body, request_bodies
from bench.targets import TargetCheck
from bench.types import BenchError
from leadml.ml.types import LEAD_CONVERSION
from predictions.services import predictions_make
from registry.services import api_token_create, api_token_revoke

# In-process requests profiled when a single-request target is missed.
PROFILE_CALLS = 20
# A part under this share of the profiled time is not worth a mention.
PROFILE_MIN_SHARE = 0.04
PROFILE_PARTS = 6


def _label(function: tuple[str, int, str]) -> str:
    filename, _, name = function
    if filename == "~":  # a built-in: cProfile already names it, e.g. <method 'execute' ...>
        return name
    return f"{Path(filename).stem}.{name}"


def _is_project_code(filename: str) -> bool:
    base = str(settings.BASE_DIR)
    # The bench's own modules (bench/) do the measuring; they are not what is measured.
    return (
        filename.startswith(base) and "site-packages" not in filename
        and not filename.startswith(os.path.join(base, "bench", ""))
    )


def _heaviest(stats: pstats.Stats, *, path_part: str, name: str) -> tuple[str, int, str] | None:
    """The function of this project called `name`, in a file whose path holds `path_part`, that took longest."""
    found = [function for function in stats.stats  # type: ignore[attr-defined]
             if function[2] == name and path_part in function[0] and _is_project_code(function[0])]
    return max(found, key=lambda function: stats.stats[function][3], default=None)  # type: ignore[attr-defined]


def time_breakdown(stats: pstats.Stats, *, calls: int, root_path: str, root_name: str) -> dict[str, Any]:
    """Where a profiled call spends its time: outside `root`, down its heaviest chain, then the parts.

    From the root function (a view's `post`, `predictions_make`), step into its heaviest
    callee of this project while that holds most of it; the function reached is split
    into its callees (ours or libraries'). Times are per call, under cProfile (which
    makes Python-heavy parts look heavier than they are).
    """
    stats.calc_callees()
    raw = stats.stats  # type: ignore[attr-defined]  # {function: (cc, nc, tt, ct, callers)}
    callees = stats.all_callees  # type: ignore[attr-defined]
    total = stats.total_tt / calls  # type: ignore[attr-defined]
    root = _heaviest(stats, path_part=root_path, name=root_name)
    if root is None:
        return {"total_ms": round(total * 1000, 2), "outside_ms": None, "chain": [], "parts": []}
    chain = [root]
    while ours := {callee: row[3] for callee, row in callees.get(chain[-1], {}).items()
                   if _is_project_code(callee[0]) and callee not in chain}:
        heaviest = max(ours, key=ours.get)
        if ours[heaviest] < 0.6 * raw[chain[-1]][3]:
            break
        chain.append(heaviest)
    parts = sorted(((callee, row[3]) for callee, row in callees.get(chain[-1], {}).items()), key=lambda item: -item[1])
    return {
        "total_ms": round(total * 1000, 2),
        "outside_ms": round((total - raw[root][3] / calls) * 1000, 2),
        "chain": [{"name": _label(function), "ms": round(raw[function][3] / calls * 1000, 2)} for function in chain],
        "parts": [
            {"name": _label(function), "ms": round(seconds / calls * 1000, 2)}
            for function, seconds in parts[:PROFILE_PARTS]
            if seconds / calls >= PROFILE_MIN_SHARE * total
        ],
    }


def profiled(call: Callable[[], Any], *, calls: int, root: tuple[str, str]) -> dict[str, Any]:
    """Run `call` `calls` times under cProfile and say where its time goes, from `root` (path part, name)."""
    profile = cProfile.Profile()
    for _ in range(calls):
        profile.runcall(call)
    return time_breakdown(pstats.Stats(profile), calls=calls, root_path=root[0], root_name=root[1])


# Where a profile's breakdown starts: the prediction views' `post`, the scoring service.
VIEW_ROOT = ("predictions/apis", "post")
SERVICE_ROOT = ("predictions/services", "predictions_make")


def _in_process_client(key: str) -> Client:
    # The whole Django stack (middleware, token check, throttle, parser, renderer)
    # without the server. 127.0.0.1 is an allowed host in every configuration.
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="127.0.0.1")


def _posted(client: Client, path: str, body: bytes) -> Callable[[], Any]:
    def call() -> Any:
        response = client.post(path, data=body, content_type="application/json")
        if response.status_code != 200:
            raise BenchError(f"in-process POST {path} answered {response.status_code}: {response.content[:300]!r}")
        return response

    return call


def where_the_time_goes(
    figures: Mapping[str, Any], checks: Sequence[TargetCheck], *, tenant: str, records: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Profile in-process what each missed target measures: one /predict, one batch."""
    missed = {check.topic for check in checks if check.passed is False}
    found: dict[str, Any] = {}
    token, key = api_token_create(name="bench-profile", tenant=tenant)
    try:
        client = _in_process_client(key)
        if "predict" in missed:
            body = request_bodies(tenant, records[:1])[0]
            _posted(client, PREDICT_PATH, body)()  # warm-up
            found["predict"] = profiled(_posted(client, PREDICT_PATH, body), calls=PROFILE_CALLS, root=VIEW_ROOT)
        if "batch" in missed:
            score = lambda: predictions_make(  # noqa: E731
                tenant=tenant, model_type=LEAD_CONVERSION, records=list(records), batch=True
            )
            score()  # warm-up: the first batch of a process fills caches the later ones reuse
            found["batch"] = profiled(score, calls=1, root=SERVICE_ROOT) | {"outside_ms": None}
        if "http_batch" in missed:
            call = _posted(client, "/predict/batch", batch_body(tenant, records))
            call()  # warm-up, as above
            found["http_batch"] = profiled(call, calls=1, root=VIEW_ROOT)
    finally:
        api_token_revoke(token=token)
    if "errors" in missed:
        found["errors"] = _errors_seen(figures)
    return found


def _errors_seen(figures: Mapping[str, Any]) -> dict[str, Any]:
    """The HTTP errors by kind with a sample answer of each, and the rows stored against those answered."""
    service, http_figures = figures["service"], figures.get("http") or {}
    kinds: dict[str, int] = {}
    samples: dict[str, str] = {}
    for load in [*http_figures.get("loads", []), *([http_figures["batch"]] if http_figures else [])]:
        for kind, count in load["error_kinds"].items():
            kinds[kind] = kinds.get(kind, 0) + count
        for kind, sample in load["error_samples"].items():
            samples.setdefault(kind, sample)
    stored = {"service": [service["stored"], service["answered"]]}
    if http_figures:
        stored["http"] = [http_figures["stored"], http_figures["answered"]]
    return {"error_kinds": kinds, "error_samples": samples, "stored_answered": stored,
            "database_locked_lines": http_figures.get("database_locked_lines", 0)}

"""The targets of `manage.py bench`: ratios within one run, never absolute times (README, "Benchmark").

`/predict` with reasons is held to the floor of the same run (bench/floor.py) at 8
clients and at 1, the batch to bare `predict_proba` in-process and over HTTP, SQLite to
no errors, and every phase to as many stored predictions as answered ones. A check not
measured (no HTTP, not SQLite) is skipped, not passed.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.common import ratio

# The targets (issue 13): /predict with reasons against the floor, in the same run.
TARGET_CLIENTS = 8
TARGET_THROUGHPUT_SHARE = 0.70  # /predict req/s over the floor's, 8 clients
TARGET_P99_RATIO = 2.0  # /predict p99 over the floor's, 8 clients
TARGET_MAX_MS = 100.0  # no /predict request slower, 8 clients
TARGET_SINGLE_OVERHEAD_MS = 3.0  # /predict p50 over the floor's, 1 client
TARGET_BATCH_RATIO = 1.5  # in-process batch (validation, scoring, COPY) over bare predict_proba
TARGET_HTTP_BATCH_RATIO = 2.5  # the same batch over HTTP


@dataclass(frozen=True)
class TargetCheck:
    name: str
    value: str
    target: str
    passed: bool | None  # None: not measured
    topic: str = ""  # what says where its time goes: predict, batch, http_batch, errors

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "SKIP"}[self.passed]


def _load_for(http_figures: Mapping[str, Any], label: str, clients: int, *, largest: bool) -> Mapping[str, Any]:
    """The `label` load with `clients` clients, else the one with the most (or fewest) clients."""
    loads = sorted((load for load in http_figures["loads"] if load["label"] == label), key=lambda load: load["clients"])
    exact = [load for load in loads if load["clients"] == clients]
    return exact[0] if exact else (loads[-1] if largest else loads[0])


def _many_clients_checks(http_figures: Mapping[str, Any]) -> list[TargetCheck]:
    predict = _load_for(http_figures, "predict", TARGET_CLIENTS, largest=True)
    floor = _load_for(http_figures, "floor", TARGET_CLIENTS, largest=True)
    at = f"/predict, {predict['clients']} clients"
    share = ratio(predict["requests_per_s"], floor["requests_per_s"])
    p99 = ratio(predict["p99_ms"], floor["p99_ms"])
    stored_ok = predict["stored"] == predict["ok"]
    return [
        TargetCheck(f"{at}: req/s / floor's", f"{share:.2f} ({predict['requests_per_s']:,.0f} / "
                    f"{floor['requests_per_s']:,.0f})", f">= {TARGET_THROUGHPUT_SHARE:.2f}",
                    share >= TARGET_THROUGHPUT_SHARE, "predict"),
        TargetCheck(f"{at}: p99 / floor's p99", f"{p99:.2f}x ({predict['p99_ms']:.1f} / {floor['p99_ms']:.1f} ms)",
                    f"<= {TARGET_P99_RATIO:g}x", p99 <= TARGET_P99_RATIO, "predict"),
        TargetCheck(f"{at}: slowest request", f"{predict['max_ms']:.1f} ms", f"<= {TARGET_MAX_MS:g} ms",
                    predict["max_ms"] <= TARGET_MAX_MS, "predict"),
        TargetCheck(f"{at}: errors; stored = answered",
                    f"{predict['errors']}; {predict['stored']:,} {'=' if stored_ok else '!='} {predict['ok']:,}",
                    "0; equal", predict["errors"] == 0 and stored_ok, "errors"),
    ]


def _one_client_check(http_figures: Mapping[str, Any]) -> TargetCheck:
    predict = _load_for(http_figures, "predict", 1, largest=False)
    floor = _load_for(http_figures, "floor", 1, largest=False)
    overhead = predict["p50_ms"] - floor["p50_ms"]
    return TargetCheck(
        f"/predict, {predict['clients']} client: p50 - floor's p50",
        f"{overhead:+.2f} ms ({predict['p50_ms']:.2f} - {floor['p50_ms']:.2f})",
        f"<= +{TARGET_SINGLE_OVERHEAD_MS:g} ms", overhead <= TARGET_SINGLE_OVERHEAD_MS, "predict",
    )


def _sqlite_check(figures: Mapping[str, Any]) -> TargetCheck:
    name = f"SQLite: errors at {TARGET_CLIENTS} clients (/predict, floor)"
    http_figures = figures.get("http")
    if figures["machine"]["database"]["vendor"] != "sqlite":
        return TargetCheck(name, "not SQLite", "0", None, "errors")
    if http_figures is None:
        return TargetCheck(name, "not measured", "0", None, "errors")
    many = [_load_for(http_figures, label, TARGET_CLIENTS, largest=True) for label in ("predict", "floor")]
    errors = sum(load["errors"] for load in many)
    return TargetCheck(name, f"{errors}", "0", errors == 0, "errors")


def _not_measured(name: str, target: str, topic: str) -> TargetCheck:
    return TargetCheck(name, "not measured", target, None, topic)


def targets_check(figures: Mapping[str, Any]) -> list[TargetCheck]:
    """Compare the figures of this run with the targets: ratios within the run, no absolute times."""
    bare, service, http_figures = figures["bare"], figures["service"], figures.get("http")
    rows = service["batch_rows"]
    batch_ratio = ratio(service["batch"]["median_ms"], bare["batch"]["median_ms"])
    checks = []
    if http_figures is None:
        checks += [
            _not_measured(f"/predict, {TARGET_CLIENTS} clients, against the floor", "see README", "predict"),
            _not_measured("/predict, 1 client: p50 - floor's p50", f"<= +{TARGET_SINGLE_OVERHEAD_MS:g} ms", "predict"),
        ]
    else:
        checks += [*_many_clients_checks(http_figures), _one_client_check(http_figures)]
    checks.append(TargetCheck(f"batch {rows:,} in-process / bare predict_proba", f"{batch_ratio:.2f}x",
                              f"<= {TARGET_BATCH_RATIO:g}x", batch_ratio <= TARGET_BATCH_RATIO, "batch"))
    if http_figures is None or not http_figures["batch"].get("median_ms"):
        checks.append(_not_measured(f"batch {rows:,} over HTTP / bare predict_proba",
                                    f"<= {TARGET_HTTP_BATCH_RATIO:g}x", "http_batch"))
    else:
        http_ratio = ratio(http_figures["batch"]["median_ms"], bare["batch"]["median_ms"])
        checks.append(TargetCheck(f"batch {rows:,} over HTTP / bare predict_proba", f"{http_ratio:.2f}x",
                                  f"<= {TARGET_HTTP_BATCH_RATIO:g}x", http_ratio <= TARGET_HTTP_BATCH_RATIO,
                                  "http_batch"))
    checks.append(_sqlite_check(figures))
    stored_ok = service["stored"] == service["answered"] and (
        http_figures is None or http_figures["stored"] == http_figures["answered"]
    )
    checks.append(TargetCheck("stored = answered, every phase", "yes" if stored_ok else "no", "yes", stored_ok,
                              "errors"))
    return checks

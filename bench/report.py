"""The text `manage.py bench` prints: machine, model, in-process and HTTP figures, targets, profiles."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.profiling import PROFILE_CALLS
from bench.scoring_http import DATABASE_LOCKED, LOAD_ROUNDS


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f} ms"


def report_lines(figures: Mapping[str, Any]) -> list[str]:
    """Render the figures as the text report the command prints."""
    machine, model, config = figures["machine"], figures["model"], figures["config"]
    bare, service = figures["bare"], figures["service"]
    database = machine["database"]
    rows = service["batch_rows"]
    lines = [
        f"leadml bench, {machine['date']}",
        f"machine   {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM",
        f"software  Python {machine['python']}, scikit-learn {machine['sklearn']}, "
        f"{database['vendor']} {database['version']}, OMP_NUM_THREADS={machine['omp_num_threads']}",
        f"model     {model['name']} v{model['version']} {model['algorithm']} on {config['dataset']} "
        f"({model['trained_rows']:,} rows, ROC-AUC {model.get('roc_auc')}, calibrated {model['calibrated']}); "
        f"upload {model['upload_s']} s, training {model['train_s']} s",
        "",
        f"{'':36}{'1 row p50':>12}{'1 row p99':>12}{f'{rows:,} rows (median)':>22}",
        f"{'bare predict_proba':36}{_ms(bare['single']['p50_ms']):>12}{_ms(bare['single']['p99_ms']):>12}"
        f"{_ms(bare['batch']['median_ms']):>22}",
        f"{'service predictions_make':36}{_ms(service['single']['p50_ms']):>12}"
        f"{_ms(service['single']['p99_ms']):>12}{_ms(service['batch']['median_ms']):>22}",
    ]
    unexplained = service["single_unexplained"]
    lines += [
        f"{'service, explain=False':36}{_ms(unexplained['p50_ms']):>12}{_ms(unexplained['p99_ms']):>12}",
        f"{'service batch, explain=True (1 run)':36}{'':24}{_ms(service['batch_explain']['median_ms']):>22}",
        f"  (1 row: {bare['single']['n']} calls each, the service's with reasons unless explain=False; "
        f"batch: median of {service['batch']['runs']} runs)",
    ]
    http_figures = figures.get("http")
    if http_figures is not None:
        lines += _http_lines(http_figures, rows)
    lines += [
        "",
        f"stored = answered  service: {service['stored']:,} stored / {service['answered']:,} answered"
        + (
            f"; HTTP: {http_figures['stored']:,} stored / {http_figures['answered']:,} answered"
            if http_figures
            else ""
        ),
        "",
        "targets (ratios within this run; README, Benchmark)",
    ]
    lines += [
        f"  {check['verdict']:5} {check['name']:48} {check['value']:>30}   (target {check['target']})"
        for check in figures["targets"]
    ]
    lines += _budget_lines(figures.get("budget") or {})
    found = figures.get("where_the_time_goes")
    if found:
        lines += ["", "where the time goes (missed targets; in-process cProfile, which inflates Python-heavy parts)"]
        lines += _where_lines(found)
    return lines


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _rss(values: Sequence[float]) -> str:
    return " / ".join(f"{value:,.0f}" for value in values) + " MiB" if values else "-"


def _load_line(load: Mapping[str, Any]) -> str:
    label = f"POST {load['path']}, {load['clients']} client{'s' * (load['clients'] > 1)}"
    stored = "-" if load["stored"] is None else f"{load['stored']:,}"
    return (
        f"{label:36}{_ms(load['p50_ms']):>11}{_ms(load['p99_ms']):>11}{_ms(load['max_ms']):>11}"
        f"{load['requests_per_s']:>9,.1f}{load['worker_cpu_ms']:>8.2f}{_cpu(load['database_cpu_ms']):>8}"
        f"{load['client_cpu_ms']:>8.2f}{load['ok']:>8,}{load['errors']:>7,}{stored:>8}"
        f"  {_rss(load['rss_mib'])}"
        + (f"  {load['error_kinds']}" if load["errors"] else "")
    )


def _http_lines(http_figures: Mapping[str, Any], rows: int) -> list[str]:
    access_log = "on" if http_figures["access_log"] else "off"
    lines = [
        "",
        f"HTTP (manage.py serve: gunicorn {http_figures['workers']} workers x {http_figures['threads']} threads, "
        f"access log {access_log}; /health {http_figures['health_status']}; server exit code "
        f"{http_figures.get('server_exit_code')}; log {http_figures['server_log']})",
    ]
    if http_figures.get("health_first_failure"):
        lines.append(f"  (while starting, /health first answered {http_figures['health_first_failure']})")
    lines += [
        f"{'':36}{'p50':>11}{'p99':>11}{'max':>11}{'req/s':>9}{'CPU ms':>8}{'DB ms':>8}{'clients':>8}{'ok':>8}"
        f"{'errors':>7}{'stored':>8}"
        "  RSS per worker",
    ]
    lines += [_load_line(load) for load in http_figures["loads"]]
    batch = http_figures["batch"]
    lines.append(
        f"{f'POST /predict/batch, {rows:,} rows':36}median {_ms(batch.get('median_ms'))} of {batch['runs']} runs, "
        f"{batch['errors']} errors, {batch['stored']:,} stored / {batch['answered']:,} answered  "
        f"{_rss(batch['rss_mib'])}"
    )
    lines.extend((
        f"  (/predict and the floor alternate in {LOAD_ROUNDS} rounds per client count; keep-alive clients; "
        "CPU ms: the workers' CPU time per answer;",
        "   DB ms: the database server's (SQLite: in the workers' already; '-': not on this machine); "
        "clients: the load clients';",
        f"   '{DATABASE_LOCKED}' in the server log: {http_figures.get('database_locked_lines', 0)} lines)",
    ))
    check = http_figures.get("access_log_check")
    if check:
        lines += [
            "",
            f"access log, floor at {check['on']['clients']} clients, two servers alternated "
            f"({'on' if check['default_on'] else 'off'} by default):",
            f"  on  {check['on']['requests_per_s']:,.1f} req/s, p50 {_ms(check['on']['p50_ms'])}, "
            f"{check['on']['worker_cpu_ms']:.3f} ms worker CPU per answer",
            f"  off {check['off']['requests_per_s']:,.1f} req/s, p50 {_ms(check['off']['p50_ms'])}, "
            f"{check['off']['worker_cpu_ms']:.3f} ms worker CPU per answer",
            f"  the log costs {check['cost_pct']:+.1f} % of the throughput, {check['cpu_cost_pct']:+.1f} % CPU per answer",
        ]
    return lines


WHAT_IS_PROFILED = {
    "predict": f"POST /predict with reasons, in-process ({PROFILE_CALLS} calls; outside the view: Django, DRF, "
    "token, throttle, parser, renderer)",
    "batch": "predictions_make, batch (validation, scoring, COPY; 1 call)",
    "http_batch": "POST /predict/batch, in-process (1 call; outside the view: as for /predict)",
}


def _where_lines(found: Mapping[str, Any]) -> list[str]:
    lines = []
    for topic, breakdown in found.items():
        if topic == "errors":
            lines.append(
                f"  errors: {breakdown['error_kinds']}; '{DATABASE_LOCKED}' in the server log "
                f"{breakdown['database_locked_lines']} times; stored / answered {breakdown['stored_answered']}; "
                f"first answers: {breakdown['error_samples']}"
            )
            continue
        chain = " > ".join(f"{part['name']} {part['ms']:,.2f}" for part in breakdown["chain"])
        parts = ", ".join(f"{part['name']} {part['ms']:,.2f}" for part in breakdown["parts"])
        outside = breakdown["outside_ms"]
        lines += [
            f"  {WHAT_IS_PROFILED[topic]}: {breakdown['total_ms']:,.2f} ms a call profiled"
            + (f", {outside:,.2f} ms of it outside" if outside is not None else ""),
            f"    {chain} ms; of which {parts} ms",
        ]
    return lines


def _budget_lines(budget: Mapping[str, Any]) -> list[str]:
    predict, batch = budget.get("predict"), budget.get("batch")
    if not predict and not batch:
        return []
    lines = ["", "what the targets leave (the least work a stored answer needs, measured alone in this run; README, "
             "Benchmark)"]
    if predict:
        scored = "scoring one record with its reasons" if predict["explained"] else "scoring one record"
        lines += [
            f"  /predict, {predict['clients']} clients: the floor costs {predict['floor_cpu_ms']:.2f} ms CPU per answer "
            f"(workers, database, clients); the target share leaves /predict {predict['allowed_extra_ms']:.2f} ms more.",
            f"    Storing its row alone costs {predict['store_cpu_ms']:.2f} ms here + "
            f"{predict['store_database_cpu_ms']:.2f} ms in the database, {scored} alone "
            f"{predict['score_cpu_ms']:.2f} ms: at best {predict['best_share']:.2f} of the floor's throughput",
        ]
    if batch:
        database = (
            "" if batch["database_cpu_ms"] is None
            else f", of which the database's CPU {batch['database_cpu_ms']:,.1f} ms = {batch['database_ratio']:.2f}x"
        )
        lines.append(
            f"  batch {batch['rows']:,}: storing its rows alone (rolled back before the commit) "
            f"{batch['store_ms']:,.1f} ms = {batch['store_ratio']:.2f}x bare{database}"
        )
    return lines

"""Medians of the repetitions, the markdown tables, and the targets met or missed."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from .scenarios import BOUND, COST_PAIRS, REFERENCE

Run = dict[str, Any]


def medians(runs: Iterable[Run]) -> dict[tuple[str, str], Run]:
    """One row per (scenario, variant): the median of every number over its repetitions."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        if "failed" in run:
            continue
        groups.setdefault((run["scenario"], run["variant"]), []).append(run)
    rows: dict[tuple[str, str], Run] = {}
    for key, group in groups.items():
        row: Run = {"label": group[0]["label"], "reps": len(group)}
        for name, value in group[0].items():
            if isinstance(value, int | float) and not isinstance(value, bool) and name != "rep":
                values = [r[name] for r in group if r.get(name) is not None]
                row[name] = statistics.median(values) if values else None
            elif isinstance(value, list) and all(isinstance(v, int | float) for v in value):
                # Per-process shares: busiest first in each run, then the median of each rank.
                ranked = [sorted(r[name], reverse=True) for r in group if r.get(name)]
                row[name] = [statistics.median(rank) for rank in zip(*ranked, strict=False)]
        rows[key] = row
    return rows


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def stream_table(scenario: str, rows: dict[tuple[str, str], Run]) -> list[str]:
    mine = {variant: row for (name, variant), row in rows.items() if name == scenario}
    transport = "ws" if scenario.startswith("WS") else "sse"
    bound = mine.get(f"{BOUND.key}/{transport}", {})
    ref = mine.get(f"{REFERENCE.key}/{transport}", {})
    lines = [
        f"### {scenario}",
        "",
        "| server | delivered ev/s | x bound | x fastapi-streaming | published ev/s | p50 ms "
        "| p99 ms | p99 x bound | max ms | errors | gaps (conns) | undelivered (conns) | dups "
        "| server CPU | us/event | client CPU |",
        "|---|" + "---:|" * 15,
    ]
    for variant in sorted(mine, key=lambda v: (not v.startswith(BOUND.key), v)):
        row = mine[variant]
        lines.append(
            "| "
            + " | ".join(
                [
                    row["label"],
                    _num(row.get("delivered_rate")),
                    _x(_ratio(row.get("delivered_rate"), bound.get("delivered_rate"))),
                    _x(_ratio(row.get("delivered_rate"), ref.get("delivered_rate"))),
                    _num(row.get("published_rate")),
                    _ms(row.get("p50_ms")),
                    _ms(row.get("p99_ms")),
                    _x(_ratio(row.get("p99_ms"), bound.get("p99_ms"))),
                    _ms(row.get("max_ms")),
                    _num(row.get("errors")),
                    f"{_num(row.get('gaps'))} ({_num(row.get('conns_with_gaps'))})",
                    f"{_num(row.get('undelivered'))} ({_num(row.get('conns_with_undelivered'))})",
                    _num(row.get("duplicates")),
                    _pct(row.get("server_cpu")),
                    _num(row.get("us_per_event"), 1),
                    _pct(row.get("client_cpu")),
                ]
            )
            + " |"
        )
    return [*lines, ""]


def scaleout_table(scenario: str, rows: dict[tuple[str, str], Run]) -> list[str]:
    mine = {variant: row for (name, variant), row in rows.items() if name == scenario}
    one = mine.get("fs-redis/sse", {})
    lines = [
        f"### {scenario}",
        "",
        "fastapi-streaming on redis://, one uvicorn worker against two: events published to "
        "either worker reach the clients of both through Redis. CPU is in shares of one core: "
        "each worker, the load client, the publisher, redis-server.",
        "",
        "| server | delivered ev/s | x one worker | p50 ms | p99 ms | errors | gaps (conns) "
        "| undelivered (conns) | dups | worker CPU | client CPU | publisher CPU | Redis CPU "
        "| RSS MiB |",
        "|---|" + "---:|" * 13,
    ]
    for variant in sorted(mine, key=lambda v: (v != "fs-redis/sse", v)):
        row = mine[variant]
        workers = " + ".join(_pct(share) for share in row.get("worker_cpu") or [])
        lines.append(
            f"| {row['label']} | {_num(row.get('delivered_rate'))} "
            f"| {_x(_ratio(row.get('delivered_rate'), one.get('delivered_rate')))} "
            f"| {_ms(row.get('p50_ms'))} | {_ms(row.get('p99_ms'))} | {_num(row.get('errors'))} "
            f"| {_num(row.get('gaps'))} ({_num(row.get('conns_with_gaps'))}) "
            f"| {_num(row.get('undelivered'))} ({_num(row.get('conns_with_undelivered'))}) "
            f"| {_num(row.get('duplicates'))} | {workers or '-'} | {_pct(row.get('client_cpu'))} "
            f"| {_pct(row.get('publisher_cpu'))} | {_pct(row.get('broker_cpu'))} "
            f"| {_num(row.get('rss_mib'), 1)} |"
        )
    lines.append("")
    return lines


def cost_table(scenario: str, rows: dict[tuple[str, str], Run]) -> list[str]:
    """Each managed server beside the same app unmanaged: the cost of plans and metrics."""
    mine = {variant: row for (name, variant), row in rows.items() if name == scenario}
    transport = "ws" if " WS " in scenario else "sse"
    lines = [
        f"### {scenario}",
        "",
        "The fan-out with a plan on every connection (each client its own principal; quota, "
        "duration, publish rate and connection cap, none reached) and Prometheus metrics, "
        "beside the same app without them. Target: within 10% (deliveries >= 0.9x, server "
        "CPU per event <= 1.1x).",
        "",
        "| server | delivered ev/s | x without | p50 ms | p99 ms | errors | gaps (conns) "
        "| undelivered (conns) | server CPU | us/event | x without |",
        "|---|" + "---:|" * 10,
    ]
    for plain, managed in COST_PAIRS:
        base = mine.get(f"{plain}/{transport}", {})
        for key in (plain, managed):
            row = mine.get(f"{key}/{transport}")
            if row is None:
                continue
            lines.append(
                f"| {row['label']} | {_num(row.get('delivered_rate'))} "
                f"| {_x(_ratio(row.get('delivered_rate'), base.get('delivered_rate')))} "
                f"| {_ms(row.get('p50_ms'))} | {_ms(row.get('p99_ms'))} "
                f"| {_num(row.get('errors'))} "
                f"| {_num(row.get('gaps'))} ({_num(row.get('conns_with_gaps'))}) "
                f"| {_num(row.get('undelivered'))} ({_num(row.get('conns_with_undelivered'))}) "
                f"| {_pct(row.get('server_cpu'))} | {_num(row.get('us_per_event'), 1)} "
                f"| {_x(_ratio(row.get('us_per_event'), base.get('us_per_event')))} |"
            )
    return [*lines, ""]


def cost_targets(rows: dict[tuple[str, str], Run]) -> list[tuple[str, str, str]]:
    """Plans and metrics within 10% of the fan-out without them, per cost scenario and broker."""
    out = []
    for scenario in dict.fromkeys(name for name, _ in rows if name.startswith("cost")):
        transport = "ws" if " WS " in scenario else "sse"
        for plain, managed in COST_PAIRS:
            base = rows.get((scenario, f"{plain}/{transport}"))
            row = rows.get((scenario, f"{managed}/{transport}"))
            if base is None or row is None:
                continue
            rate = _ratio(row.get("delivered_rate"), base.get("delivered_rate"))
            cpu = _ratio(row.get("us_per_event"), base.get("us_per_event"))
            ok = rate is not None and rate >= 0.9 and cpu is not None and cpu <= 1.1
            out.append(
                (
                    f"{scenario}, {managed} vs {plain}: within 10%",
                    f"deliveries {_x(rate)}, CPU per event {_x(cpu)}",
                    "met" if ok else "MISSED",
                )
            )
    return out


def websub_table(scenario: str, rows: dict[tuple[str, str], Run]) -> list[str]:
    mine = {variant: row for (name, variant), row in rows.items() if name == scenario}
    lines = [
        f"### {scenario}",
        "",
        "fastapi-streaming's WebSub hub, one receiver process holding every subscriber, each "
        "with its own secret (every delivery signed and checked). One run per database.",
        "",
        "| hub database | subscribing s | events | deliveries/s | p50 ms | p99 ms | max ms "
        "| undelivered | dups | bad signatures | server CPU | us/delivery | receiver CPU "
        "| RSS MiB |",
        "|---|" + "---:|" * 13,
    ]
    for variant in sorted(mine):
        row = mine[variant]
        lines.append(
            f"| {row['label']} | {_num(row.get('subscribe_s'), 1)} | {_num(row.get('events'))} "
            f"| {_num(row.get('delivered_rate'))} | {_ms(row.get('p50_ms'))} "
            f"| {_ms(row.get('p99_ms'))} | {_ms(row.get('max_ms'))} "
            f"| {_num(row.get('undelivered'))} | {_num(row.get('duplicates'))} "
            f"| {_num(row.get('bad_signatures'))} | {_pct(row.get('server_cpu'))} "
            f"| {_num(row.get('us_per_delivery'))} | {_pct(row.get('client_cpu'))} "
            f"| {_num(row.get('rss_mib'), 1)} |"
        )
    lines.append("")
    return lines


def idle_table(scenario: str, rows: dict[tuple[str, str], Run]) -> list[str]:
    mine = {variant: row for (name, variant), row in rows.items() if name == scenario}
    bound = mine.get(f"{BOUND.key}/sse", {})
    ref = mine.get(f"{REFERENCE.key}/sse", {})
    lines = [
        f"### {scenario}",
        "",
        "| server | RSS at 0 MiB | RSS with clients MiB | KiB per connection | x bound "
        "| x fastapi-streaming | errors |",
        "|---|" + "---:|" * 6,
    ]
    for variant in sorted(mine, key=lambda v: (not v.startswith(BOUND.key), v)):
        row = mine[variant]
        kib = row.get("kib_per_connection")
        lines.append(
            f"| {row['label']} | {_num(row.get('rss_empty_mib'), 1)} "
            f"| {_num(row.get('rss_full_mib'), 1)} | {_num(kib, 1)} "
            f"| {_x(_ratio(kib, bound.get('kib_per_connection')))} "
            f"| {_x(_ratio(kib, ref.get('kib_per_connection')))} | {_num(row.get('errors'))} |"
        )
    return [*lines, ""]


def _find(rows: dict[tuple[str, str], Run], scenario: str, variant: str) -> Run | None:
    return rows.get((scenario, variant))


def targets(rows: dict[tuple[str, str], Run]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for each issue-level target, for fastapi-streaming memory://."""
    out: list[tuple[str, str, str]] = []
    ref = REFERENCE.key

    def compare(transport: str, scenario: str, label: str, floor: float, p99_cap: float | None,
                complete: bool) -> None:  # fmt: skip
        row = _find(rows, scenario, f"{ref}/{transport}")
        bound = _find(rows, scenario, f"{BOUND.key}/{transport}")
        if row is None or bound is None:
            out.append((label, "not measured in this run", "-"))
            return
        share = _ratio(row.get("delivered_rate"), bound.get("delivered_rate"))
        ok = share is not None and share >= floor
        measured = f"deliveries {_x(share)} bound"
        if p99_cap is not None:
            p99 = _ratio(row.get("p99_ms"), bound.get("p99_ms"))
            ok = ok and p99 is not None and p99 <= p99_cap
            measured += f", p99 {_x(p99)} bound ({_ms(row.get('p99_ms'))} ms)"
        if complete:
            missing = sum(row.get(k) or 0 for k in ("gaps", "undelivered", "errors"))
            ok = ok and missing == 0
            measured += (
                f", {_num(row.get('gaps'))} gaps, {_num(row.get('undelivered'))} undelivered"
                f", {_num(row.get('errors'))} errors"
            )
        out.append((label, measured, "met" if ok else "MISSED"))

    for transport, name in (("sse", "SSE"), ("ws", "WS")):
        compare(transport, f"{name} 1,000 x 100/s", f"{name} 1,000 x 100/s: all delivered, "
                ">=0.9x bound, p99 <=1.5x bound", 0.9, 1.5, True)  # fmt: skip
        compare(transport, f"{name} 1,000 x 1,000/s", f"{name} 1,000 x 1,000/s: >=0.7x bound "
                "deliveries", 0.7, None, False)  # fmt: skip
        compare(transport, f"{name} 100 x 100/s", f"{name} 100 x 100/s: p99 <=1.5x bound",
                0.0, 1.5, False)  # fmt: skip
    row = _find(rows, "SSE 5,000 x 10/s", f"{ref}/sse")
    if row is None:
        out.append(("SSE 5,000 x 10/s: zero errors", "not measured in this run", "-"))
    else:
        errors = row.get("errors") or 0
        out.append(
            (
                "SSE 5,000 x 10/s: zero errors",
                f"{_num(errors)} errors, {_num(row.get('gaps'))} gaps",
                "met" if errors == 0 else "MISSED",
            )
        )
    two = _find(rows, "scale-out SSE 1,000 x 1,000/s", "fs-redis-2w/sse")
    one = _find(rows, "scale-out SSE 1,000 x 1,000/s", "fs-redis/sse")
    label = "two workers on Redis >= 1.3x one worker at 1,000 clients (saturated)"
    if two is None or one is None:
        out.append((label, "not measured in this run", "-"))
    else:
        gain = _ratio(two.get("delivered_rate"), one.get("delivered_rate"))
        verdict = "met" if gain is not None and gain >= 1.3 else "MISSED"
        out.append((label, f"{_x(gain)} one worker", verdict))
    big = _find(rows, "scale-out SSE 10,000 x 10/s", "fs-redis-2w/sse")
    label = "10,000 SSE connections x 10/s on two workers on Redis: zero errors"
    if big is None:
        out.append((label, "not measured in this run", "-"))
    else:
        lost = sum(big.get(k) or 0 for k in ("errors", "gaps", "undelivered"))
        measured = (
            f"{_num(big.get('errors'))} errors, {_num(big.get('gaps'))} gaps, "
            f"{_num(big.get('undelivered'))} undelivered, p99 {_ms(big.get('p99_ms'))} ms"
        )
        out.append((label, measured, "met" if lost == 0 else "MISSED"))
    idle = [row for (name, variant), row in rows.items()
            if name.startswith("idle SSE") and variant == f"{ref}/sse"]  # fmt: skip
    if not idle:
        out.append(("<=15 KiB per idle SSE connection", "not measured in this run", "-"))
    else:
        kib = idle[0].get("kib_per_connection")
        ok = kib is not None and kib <= 15
        out.append(("<=15 KiB per idle SSE connection", f"{_num(kib, 1)} KiB", "met" if ok else
                    "MISSED"))  # fmt: skip
    return out


def markdown(results: dict[str, Any]) -> str:
    rows = medians(results["runs"])
    env = results["environment"]
    scenario_names = list(dict.fromkeys(run["scenario"] for run in results["runs"]))
    lines = [
        f"# Benchmark results: {results['mode']} mode, {results['started']}",
        "",
        f"Medians of {results['repetitions']} repetition(s), servers interleaved. "
        f"{env['cpus']} CPUs, load average {env['load_before']} before and {env['load_after']} "
        "after. The machine is shared with other developers' test runs, so absolute figures "
        "are noisy; compare servers within one table (they ran side by side), not across "
        "runs.",
        "",
        "uvicorn " + env["versions"].get("uvicorn", "?") + " with uvloop + httptools, one worker"
        "; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if k != "uvicorn") + ".",
        "",
        "Columns: *delivered ev/s* counts events that reached clients, from the first publish "
        "to the last arrival; *published ev/s* is what the server accepted of the offered "
        "rate; *gaps* are events missing before the last one a connection got (lost), "
        "*undelivered* the events after it (lost, or still queued when deliveries stopped for "
        "0.5 s or 4 s after the publisher finished), each with the number of connections "
        "concerned; events whose POST the server never answered with 202 count as neither; "
        "*errors* are connections that failed to open or were dropped; *server CPU* and "
        "*client CPU* are shares of one core (the load client's processes added up); "
        "*us/event* is server CPU time per delivered event.",
        "",
    ]
    for name in scenario_names:
        if name.startswith("idle"):
            lines += idle_table(name, rows)
        elif name.startswith("WebSub"):
            lines += websub_table(name, rows)
        elif name.startswith("scale-out"):
            lines += scaleout_table(name, rows)
        elif name.startswith("cost"):
            lines += cost_table(name, rows)
        else:
            lines += stream_table(name, rows)
    failed = [run for run in results["runs"] if "failed" in run]
    if failed:
        lines += ["### Runs that failed", ""]
        lines += [f"- {r['scenario']}, {r['label']}, rep {r['rep']}: {r['failed']}" for r in failed]
        lines.append("")
    if results["skipped"]:
        lines += ["### Skipped", ""]
        lines += [f"- **{what}**: {why}" for what, why in results["skipped"].items()]
        lines.append("")
    if results["mode"] == "cost":
        lines += ["### Targets: the cost of plans and metrics", ""]
        lines += ["| target | measured | verdict |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in cost_targets(rows)]
        lines.append("")
        return "\n".join(lines)
    lines += [
        "### Targets (fastapi-streaming on memory://)",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in targets(rows)]
    lines.append("")
    return "\n".join(lines)

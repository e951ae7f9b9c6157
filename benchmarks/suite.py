"""Run a mode's scenarios: every server in turn, repeated, within a time budget."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .processes import ROOT, raise_open_files_limit
from .runner import SkipVariant, idle_run, stream_run
from .scenarios import (
    COST_SERVERS,
    PUBSUB,
    REDIS_URL,
    SCALE_OUT_SERVERS,
    SERVERS,
    Mode,
    Scenario,
    Variant,
    variants,
)
from .websub import DATABASES, websub_run

PACKAGES = [
    "uvicorn", "uvloop", "httptools", "websockets", "fastapi", "starlette",
    "sse-starlette", "broadcaster", "redis", "fastapi-streaming",
]  # fmt: skip


def measure_websub(scenario: Scenario, kind: str, log: Callable[[str], None]) -> dict[str, Any]:
    head = {"scenario": scenario.name, "variant": f"websub/{kind}", "label": kind, "rep": 0}
    began = time.monotonic()
    try:
        run = websub_run(scenario, kind)
    except Exception as exc:
        log(f"  {scenario.name:24} {kind:42} FAILED: {exc!r}")
        return {**head, "failed": repr(exc)}
    log(
        f"  {scenario.name:24} {kind:42} {run['delivered_rate']:9,.0f} deliveries/s"
        f"  p99 {run['p99_ms'] or 0:8.1f} ms  undelivered {run['undelivered']}"
        f"  ({time.monotonic() - began:.0f}s)"
    )
    return {**head, **run}


def unavailable_servers() -> dict[str, str]:
    """Servers that cannot run on this machine, and why (checked once, before any run)."""
    missing: dict[str, str] = {}
    if not os.access(PUBSUB.python, os.X_OK):
        missing[PUBSUB.key] = (
            f"{PUBSUB.python} is missing: `make bench-venv` installs fastapi-websocket-pubsub "
            "in its own virtualenv"
        )
    host, port = REDIS_URL.removeprefix("redis://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as exc:
        for server in SERVERS:
            if server.env.get("BENCH_BROKER", "").startswith("redis"):
                missing[server.key] = f"no Redis at {REDIS_URL}: {exc}"
    return missing


def environment() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        versions["fastapi-streaming"] += f" ({commit})"
    except OSError:
        pass
    if os.access(PUBSUB.python, os.X_OK):
        probe = "import importlib.metadata as m; print(m.version('fastapi-websocket-pubsub'))"
        found = subprocess.run([PUBSUB.python, "-c", probe], capture_output=True, text=True)
        versions["fastapi-websocket-pubsub"] = found.stdout.strip() or "?"
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": versions,
        "load_before": _load(),
    }


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_mode(
    mode: Mode,
    *,
    only: set[str] | None = None,
    budget: float = 1200.0,
    duration: float | None = None,
    publishers: int | None = None,
    profile: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    raise_open_files_limit()
    started = time.monotonic()
    results: dict[str, Any] = {
        "mode": mode.name,
        "repetitions": mode.repetitions,
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "environment": environment(),
        "runs": [],
        "skipped": dict(mode.skipped),
    }
    skip = unavailable_servers()
    for scenario in mode.scenarios:
        if scenario.kind == "websub":
            # One run per database: nothing runs beside it to compare with, in any mode.
            for kind in DATABASES:
                if time.monotonic() - started > budget:
                    results["skipped"][f"{scenario.name}, {kind}"] = "time budget used up"
                    continue
                results["runs"].append(measure_websub(scenario, kind, log))
            continue
        scenario = overridden(scenario, duration=duration, publishers=publishers)
        chosen = [
            v
            for v in variants(scenario.transport)
            if (v.server.key in only if only is not None else not v.server.opt_in)
            and (not v.server.only_in or scenario.name in v.server.only_in)
            and (scenario.kind != "scaleout" or v.server.key in SCALE_OUT_SERVERS)
            and (scenario.kind != "cost" or v.server.key in COST_SERVERS)
        ]
        for rep in range(mode.repetitions):
            # Rotate the order each repetition, so no server always runs first or last.
            shift = rep % max(1, len(chosen))
            for variant in chosen[shift:] + chosen[:shift]:
                if variant.server.key in skip:
                    continue
                if time.monotonic() - started > budget:
                    results["skipped"][f"{scenario.name}, {variant.label}, rep {rep + 1}"] = (
                        f"time budget of {budget:.0f}s used up"
                    )
                    continue
                target = None
                if profile is not None and variant.server.key.startswith(("fs-", "bare")):
                    slug = "".join(c if c.isalnum() else "-" for c in scenario.name.lower())
                    target = profile / f"{slug}-{variant.key.replace('/', '-')}-{rep + 1}.txt"
                run = measure(variant, scenario, rep, skip, log, target)
                if run is not None:
                    results["runs"].append(run)
    for key, why in skip.items():
        results["skipped"][f"server {key}"] = why
    results["environment"]["load_after"] = _load()
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    return results


def overridden(
    scenario: Scenario, *, duration: float | None = None, publishers: int | None = None
) -> Scenario:
    """The scenario with the command line's publishing time and publisher connections, where
    it publishes through the benchmark's publisher (idle and WebSub runs keep their own)."""
    if duration is not None and scenario.kind in ("stream", "cost"):
        scenario = replace(scenario, duration=duration)
    if publishers is not None and scenario.kind in ("stream", "cost", "scaleout"):
        scenario = replace(scenario, publishers=publishers)
    return scenario


def measure(
    variant: Variant,
    scenario: Scenario,
    rep: int,
    skip: dict[str, str],
    log: Callable[[str], None],
    profile: Path | None = None,
) -> dict[str, Any] | None:
    head = {"scenario": scenario.name, "variant": variant.key, "label": variant.label, "rep": rep}
    began = time.monotonic()
    try:
        if scenario.kind == "idle":
            run = idle_run(variant, scenario)
        else:
            run = stream_run(variant, scenario, profile)
    except SkipVariant as exc:
        skip[variant.server.key] = str(exc)
        log(f"  skip {variant.server.key}: {exc}")
        return None
    except Exception as exc:
        log(f"  {scenario.name:24} {variant.label:42} FAILED: {exc!r}")
        return {**head, "failed": repr(exc)}
    took = time.monotonic() - began
    if scenario.kind == "idle":
        log(
            f"  {scenario.name:24} {variant.label:42}"
            f" {run['kib_per_connection'] or 0:7.1f} KiB/conn"
            f"  errors {run['errors']}  ({took:.0f}s)"
        )
    else:
        log(
            f"  {scenario.name:24} {variant.label:42} {run['delivered_rate']:9,.0f} ev/s"
            f"  p99 {run['p99_ms'] or 0:8.1f} ms  errors {run['errors']}  gaps {run['gaps']}"
            f"  srv {run['server_cpu']:.0%} cli {run['client_cpu']:.0%}  ({took:.0f}s)"
        )
    return {**head, **run}

"""The Grafana dashboard in docs/ names exactly the metrics a real ``/metrics`` exposes: every
PromQL expression (panels and variables) reads metrics the library exports, and every metric
the library exports has a panel."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_limits import app_env
from tests.support.server import ROOT, ServerProcess

DASHBOARD = ROOT / "docs" / "grafana" / "fastapi-streaming.json"
METRIC = re.compile(r"\bstreaming_[a-z_]+\b")


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One scrape of the limits app with every part on (plans, WebSub), in one process: then
    every registered metric is listed, with or without values yet."""
    database = Path(tmp_path_factory.mktemp("hub")) / "hub.db"
    env = app_env("memory://", WEBSUB_DATABASE_URL=f"sqlite+aiosqlite:///{database}")
    with ServerProcess("tests.apps.limits_app:app", env=env) as server:
        yield httpx.get(server.url + "/metrics").text


def exported_names(exposition: str) -> set[str]:
    """Every series name a query may use: those the ``# TYPE`` lines declare (a counter's is
    already ``..._total`` there) and those of the samples."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split(" ")[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def expressions(dashboard: dict[str, Any]) -> list[str]:
    found = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", ())]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            found.append(query["query"])
    return found


def test_every_expression_of_the_dashboard_names_exported_metrics(exposition: str) -> None:
    names = exported_names(exposition)
    dashboard = json.loads(DASHBOARD.read_text())
    used = set()
    for expr in expressions(dashboard):
        metrics = METRIC.findall(expr)
        assert metrics, f"{expr!r} reads no metric of the library"
        unknown = [metric for metric in metrics if metric not in names]
        assert not unknown, f"{expr!r} names metrics /metrics does not export: {unknown}"
        used.update(metrics)
    # ...and the dashboard shows every metric the library exports (but counters' creation
    # times, which prometheus-client adds on its own).
    exported = {
        name for name in names if name.startswith("streaming_") and not name.endswith("_created")
    }
    assert exported - used == set(), "metrics without a panel"


def test_the_dashboard_is_importable_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24

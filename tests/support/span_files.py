"""A span exporter that writes each finished span as one JSON line, for tests across processes.

The OpenTelemetry SDK's in-memory exporter keeps spans in the process that made them, and a
test cannot read a uvicorn worker's memory. Each worker of the tracing tests exports through
this instead, to a file of its own (``spans-<pid>.jsonl`` in a directory the test names): with
a ``SimpleSpanProcessor`` every span is written as it ends, so the test reads them while the
workers still run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """What the tests check of a span: ids as hex, kind, links and attributes."""
    context = span.context
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
        "attributes": dict(span.attributes or {}),
        "pid": os.getpid(),
    }


class JsonLinesSpanExporter(SpanExporter):
    """Appends every exported span to ``<directory>/spans-<pid>.jsonl``."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / f"spans-{os.getpid()}.jsonl"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self.path.open("a") as file:
            for span in spans:
                file.write(json.dumps(span_record(span)) + "\n")
        return SpanExportResult.SUCCESS


def read_spans(directory: str | Path) -> list[dict[str, Any]]:
    """Every span every process wrote to ``directory`` so far (whole lines only)."""
    spans = []
    for path in sorted(Path(directory).glob("spans-*.jsonl")):
        for line in path.read_text().splitlines(keepends=True):
            if line.endswith("\n"):
                spans.append(json.loads(line))
    return spans

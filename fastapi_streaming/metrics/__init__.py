"""Prometheus metrics (``pip install "fastapi-streaming[metrics]"``): ``StreamingAPI(
metrics_url="/metrics")`` serves them; see the observability guide."""

from __future__ import annotations

from .exporter import MetricsExporter, metrics_endpoint, multiprocess_mode

__all__ = ["MetricsExporter", "metrics_endpoint", "multiprocess_mode"]

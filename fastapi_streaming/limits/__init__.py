"""Plans and limits: quotas, connection duration, publish rate and concurrent connections.

Needs the ``limits`` library (``pip install "fastapi-streaming[limits]"``), imported on first
use of a plan: the transports only need the answers. Declare a plan on the API
(``StreamingAPI(limits=Limits(plan=...))``), on a router or on a topic (``plan=...``); see
the plans and limits guide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .answers import QUOTA_EXCEEDED, QuotaExceeded, Refusal

if TYPE_CHECKING:
    from .limiter import Lease, Limiter, Limits, Meter, default_key
    from .plans import Plan, PlanByClaim, PlanChooser, choose_plan

_LAZY = {
    "Lease": "limiter",
    "Limiter": "limiter",
    "Limits": "limiter",
    "Meter": "limiter",
    "default_key": "limiter",
    "Plan": "plans",
    "PlanByClaim": "plans",
    "PlanChooser": "plans",
    "choose_plan": "plans",
}


def __getattr__(name: str) -> Any:
    """Import the parts that need the ``limits`` library on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "QUOTA_EXCEEDED",
    "Lease",
    "Limiter",
    "Limits",
    "Meter",
    "Plan",
    "PlanByClaim",
    "PlanChooser",
    "QuotaExceeded",
    "Refusal",
    "choose_plan",
    "default_key",
]

"""Plans and limits: quotas, connection duration, publish rate and concurrent connections.

Needs the ``limits`` library (``pip install "fastapi-streaming[limits]"``), imported on first
use of a plan: the transports only need the answers. Declare a plan on the API
(``StreamingAPI(limits=Limits(plan=...))``), on a router or on a topic (``plan=...``); see
the plans and limits guide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports
from .answers import QUOTA_EXCEEDED, QuotaExceeded, Refusal

if TYPE_CHECKING:
    from .limiter import Lease, Limiter, Limits, Meter, default_key
    from .plans import Plan, PlanByClaim, PlanChooser, choose_plan

# Imported on first use: their libraries are optional extras.
__getattr__ = lazy_exports(
    __name__,
    {
        "Lease": "limiter",
        "Limiter": "limiter",
        "Limits": "limiter",
        "Meter": "limiter",
        "default_key": "limiter",
        "Plan": "plans",
        "PlanByClaim": "plans",
        "PlanChooser": "plans",
        "choose_plan": "plans",
    },
)


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

"""The pluggy project of fastapi-streaming: its name and its two markers.

Plugin authors write ``from fastapi_streaming import hookimpl``. The markers live in this small
module, below every other part of the package, so the hook specifications of the brokers and of
security can use them without importing the plugin manager that loads them.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "fastapi_streaming"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

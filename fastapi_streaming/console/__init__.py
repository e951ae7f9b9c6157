"""The operations console at ``{prefix}/console`` and the admin routes it calls.

On by default and guarded by an admin scope (``streams:admin`` unless
``ConsoleSettings(admin_scope=...)`` names another); ``StreamingAPI(console=False)`` removes
it. See the console guide.
"""

from __future__ import annotations

from .guard import AdminGuard
from .routes import build_routes
from .service import Console
from .settings import ADMIN_SCOPE, ConsoleSettings

__all__ = ["ADMIN_SCOPE", "AdminGuard", "Console", "ConsoleSettings", "build_routes"]

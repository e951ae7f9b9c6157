"""Names a package exports from modules that need an optional library.

``import fastapi_streaming`` must work with none of the extras installed, so a package whose
parts need one (PyJWT, fastapi-users, limits...) names them in ``__all__`` but imports each
module only when one of its names is first used (PEP 562's module ``__getattr__``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, modules: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``modules`` maps each name to its submodule.

    The submodule is imported on first use, so a missing optional library is reported (by
    its own ``ImportError``) only to the code that needs it.
    """

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__

"""Finding broker backends by URL scheme (the in-process backend only, for now)."""

from __future__ import annotations

from typing import Any

from broadcaster import BroadcastBackend


def create_backend(url: str, pm: Any = None) -> BroadcastBackend:
    from broadcaster._backends.memory import MemoryBackend

    if not url.startswith("memory://"):
        raise ValueError(f"Unsupported broker URL {url!r}: only memory:// is available yet.")
    return MemoryBackend(url)

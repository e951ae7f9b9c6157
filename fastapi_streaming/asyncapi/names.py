"""Names an AsyncAPI document of a streaming API uses, shared by its writers and readers."""

from __future__ import annotations

import re

#: The extension that keeps what AsyncAPI has no words for: the broker channel, the overflow
#: policy and the queue size of a topic.
EXTENSION = "x-fastapi-streaming"
SCOPES_EXTENSION = "x-scopes"
#: AsyncAPI operations have no ``deprecated`` field; this extension marks them, as tools do.
DEPRECATED_EXTENSION = "x-deprecated"


def channel_key(address: str) -> str:
    """A channel id from an address: ``/stocks/{symbol}`` -> ``stocks_symbol``."""
    words = re.findall(r"[A-Za-z0-9]+", re.sub(r":[^}]*}", "}", address))
    return "_".join(words) or "root"

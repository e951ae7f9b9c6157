"""The AsyncAPI document of a streaming API, in the version and format asked for."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import yaml

from . import v2, v3
from .spec import describe_api
from .versions import DEFAULT_VERSION, check_version

if TYPE_CHECKING:
    from ..api import StreamingAPI

T = TypeVar("T")


def get_asyncapi(
    streaming: StreamingAPI, *, version: str = DEFAULT_VERSION, base_url: str | None = None
) -> dict[str, Any]:
    """Build the document of ``streaming`` (uncached: :meth:`StreamingAPI.asyncapi` caches)."""
    check_version(version)
    spec = describe_api(streaming, base_url=base_url)
    model = v2.generate(spec) if version.startswith("2.") else v3.generate(spec, version)
    document: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return document


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def to_yaml(document: dict[str, Any]) -> str:
    """YAML in the document's own key order, readable (no aliases, unicode kept)."""
    return yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


class _Dumper(yaml.SafeDumper):
    """Never writes ``&anchors``: shared objects are repeated, as in the JSON form."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(document: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return to_json(document)
    if fmt == "yaml":
        return to_yaml(document)
    raise ValueError(f"Unknown format {fmt!r}: use json or yaml.")


class DocumentCache(Generic[T]):
    """Built documents by key, valid while the topics' revision stays the same.

    Keys include the server URL, which comes from the request's ``Host`` header; the cache
    holds at most ``size`` entries, so clients sending many hosts cannot grow it.
    """

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.revision = -1
        self.items: dict[Hashable, T] = {}

    def get(self, revision: int, key: Hashable, build: Callable[[], T]) -> T:
        if revision != self.revision:
            self.items.clear()
            self.revision = revision
        found = self.items.get(key)
        if found is None:
            if len(self.items) >= self.size:
                del self.items[next(iter(self.items))]
            found = self.items[key] = build()
        return found

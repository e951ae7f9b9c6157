"""The AsyncAPI document of a streaming API, in the version and format asked for."""

from __future__ import annotations

import json
from typing import Any

import yaml

from . import v2, v3
from .document_cache import DocumentCache
from .info import AsyncAPISource, HasAsyncAPISource
from .spec import describe_api
from .versions import DEFAULT_VERSION, check_version

__all__ = [
    "DocumentCache",
    "build_document",
    "cached_document",
    "get_asyncapi",
    "render",
    "to_json",
    "to_yaml",
]


def get_asyncapi(
    api: AsyncAPISource | HasAsyncAPISource,
    *,
    version: str = DEFAULT_VERSION,
    base_url: str | None = None,
) -> dict[str, Any]:
    """Build the document of a streaming API, or of what one is built from (uncached:
    ``StreamingAPI.asyncapi()`` caches it).
    """
    source = api if isinstance(api, AsyncAPISource) else api.asyncapi_source
    return build_document(source, version=version, base_url=base_url)


def cached_document(
    source: AsyncAPISource, version: str | None = None, *, base_url: str | None = None
) -> dict[str, Any]:
    """The document (in ``version``, default the API's), built once per version and server
    URL, and again only when the topics change.
    """
    version = version or source.info.asyncapi_version
    base_url = source.info.public_url or base_url
    return source.cache.get(
        source.topics.revision,
        (version, base_url),
        lambda: build_document(source, version=version, base_url=base_url),
    )


def build_document(
    source: AsyncAPISource, *, version: str = DEFAULT_VERSION, base_url: str | None = None
) -> dict[str, Any]:
    """Build the document of ``source`` in ``version`` for clients at ``base_url``."""
    check_version(version)
    spec = describe_api(source, base_url=base_url)
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

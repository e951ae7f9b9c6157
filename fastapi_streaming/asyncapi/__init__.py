"""AsyncAPI both ways: the document of a streaming API, its docs page, and APIs made from one.

- :func:`get_asyncapi` builds the document (3.0.0 by default, 3.1.0 and 2.6.0 on request) from
  an :class:`AsyncAPISource` (the API's :class:`ApiInfo`, topics, access control and prefix),
  or from a :class:`~fastapi_streaming.StreamingAPI`, which has one;
  ``StreamingAPI.asyncapi()`` caches it.
- :func:`get_asyncapi_html` renders the docs page.
- ``StreamingAPI.from_asyncapi(...)`` creates topics from a 3.x or 2.x document, and lists
  what it does not keep as :class:`AsyncAPIImportWarning` s in ``import_warnings``.
"""

from __future__ import annotations

from .declared import AsyncAPIImportWarning
from .docs import get_asyncapi_html
from .document import get_asyncapi, to_json, to_yaml
from .errors import AsyncAPIImportError
from .info import ApiInfo, AsyncAPISource
from .validation import JsonSchemaPayload
from .versions import DEFAULT_VERSION, SUPPORTED_VERSIONS, UnsupportedVersionError

__all__ = [
    "DEFAULT_VERSION",
    "SUPPORTED_VERSIONS",
    "ApiInfo",
    "AsyncAPIImportError",
    "AsyncAPIImportWarning",
    "AsyncAPISource",
    "JsonSchemaPayload",
    "UnsupportedVersionError",
    "get_asyncapi",
    "get_asyncapi_html",
    "to_json",
    "to_yaml",
]

"""The ``/asyncapi`` docs page: the document rendered by the AsyncAPI React component.

Like FastAPI's ``get_swagger_ui_html``, but the component's standalone bundle is served by the
app itself (it ships in the package), so the page also works without internet access. Pass
other ``js_url``/``css_url`` to load the bundle from a CDN instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.responses import HTMLResponse

STATIC_DIR = Path(__file__).parent / "static"
BUNDLE_JS = "asyncapi-react.js"
BUNDLE_CSS = "asyncapi-react.css"
#: The version of ``@asyncapi/react-component`` whose bundle ships in ``static/``.
BUNDLE_VERSION = "3.2.1"
CDN_JS_URL = (
    f"https://unpkg.com/@asyncapi/react-component@{BUNDLE_VERSION}/browser/standalone/index.js"
)
CDN_CSS_URL = f"https://unpkg.com/@asyncapi/react-component@{BUNDLE_VERSION}/styles/default.css"

DEFAULT_CONFIG: dict[str, Any] = {
    "show": {
        "sidebar": True,
        "info": True,
        "servers": True,
        "operations": True,
        "messages": True,
        "schemas": True,
        "errors": True,
    },
    "sidebar": {"showOperations": "byDefault"},
}


def get_asyncapi_html(
    *,
    asyncapi_url: str,
    title: str,
    js_url: str,
    css_url: str,
    config: dict[str, Any] | None = None,
) -> HTMLResponse:
    """An HTML page that fetches ``asyncapi_url`` and renders it with the bundle at ``js_url``."""
    props = {
        "schema": {"url": asyncapi_url, "requestOptions": {}},
        "config": config or DEFAULT_CONFIG,
    }
    html = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_escape(title)}</title>
<link rel="stylesheet" href="{_escape(css_url)}">
</head>
<body>
<div id="asyncapi"></div>
<script src="{_escape(js_url)}"></script>
<script>
AsyncApiStandalone.render({_script_json(props)}, document.getElementById("asyncapi"));
</script>
</body>
</html>
"""
    return HTMLResponse(html)


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (no ``</script>`` can end it early)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

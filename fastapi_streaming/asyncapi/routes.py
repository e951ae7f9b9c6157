"""The routes that serve the document and its docs page, added by ``StreamingAPI.init_app``.

Each document is built once per version and server URL and rendered once per format, and
again only when the topics change (the registry's ``revision``), as FastAPI caches its
OpenAPI schema.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Query, Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from .docs import BUNDLE_CSS, BUNDLE_JS, STATIC_DIR, get_asyncapi_html
from .document import DocumentCache, cached_document, render
from .info import AsyncAPISource
from .versions import SUPPORTED_VERSIONS, UnsupportedVersionError

MEDIA_TYPES = {"json": "application/json", "yaml": "application/yaml"}
STATIC_PATH = "/static"


def add_asyncapi_routes(app: FastAPI, source: AsyncAPISource) -> None:
    """Serve the document of ``source`` as JSON and YAML, and its docs page."""
    info = source.info
    rendered: DocumentCache[str] = DocumentCache()

    def document(request: Request, version: str | None, fmt: str) -> Response:
        version = version or info.asyncapi_version
        base_url = info.public_url or str(request.base_url)
        try:
            built = cached_document(source, version, base_url=base_url)
        except UnsupportedVersionError as exc:
            raise HTTPException(400, str(exc)) from None
        text = rendered.get(
            source.topics.revision, (version, base_url, fmt), lambda: render(built, fmt)
        )
        return Response(text, media_type=MEDIA_TYPES[fmt])

    version_query = Query(
        None,
        description=f"The AsyncAPI version: {', '.join(SUPPORTED_VERSIONS)}.",
    )

    if info.asyncapi_url is not None:

        async def asyncapi_json(request: Request, version: str | None = version_query) -> Response:
            return document(request, version, "json")

        app.add_api_route(info.asyncapi_url, asyncapi_json, include_in_schema=False)

    if info.asyncapi_yaml_url is not None:

        async def asyncapi_yaml(request: Request, version: str | None = version_query) -> Response:
            return document(request, version, "yaml")

        app.add_api_route(info.asyncapi_yaml_url, asyncapi_yaml, include_in_schema=False)

    docs_url = info.asyncapi_docs_url
    document_url = info.asyncapi_url or info.asyncapi_yaml_url
    if docs_url is not None and document_url is not None:
        static = docs_url.rstrip("/") + STATIC_PATH
        js_url = info.asyncapi_js_url
        css_url = info.asyncapi_css_url

        async def asyncapi_docs(request: Request) -> Response:
            root = request.scope.get("root_path", "").rstrip("/")
            return get_asyncapi_html(
                asyncapi_url=root + document_url,
                title=f"{info.title} - AsyncAPI",
                js_url=js_url or f"{root}{static}/{BUNDLE_JS}",
                css_url=css_url or f"{root}{static}/{BUNDLE_CSS}",
            )

        app.add_api_route(docs_url, asyncapi_docs, include_in_schema=False)
        link_from_openapi(app, docs_url, info.title)
        if js_url is None or css_url is None:
            app.mount(static, StaticFiles(directory=STATIC_DIR), name="fastapi_streaming_asyncapi")


def link_from_openapi(app: FastAPI, docs_url: str, title: str) -> None:
    """Point FastAPI's ``/docs`` at the AsyncAPI page, where the streams are documented.

    The link goes at the end of the OpenAPI description, which Swagger UI and ReDoc show under
    the title (``externalDocs`` would need an absolute URL, which the app does not know).
    """
    link = (
        f"Streaming topics (WebSocket, Server-Sent Events, WebSub): [{title}, AsyncAPI]({docs_url})"
    )
    app.description = f"{app.description}\n\n{link}" if app.description else link

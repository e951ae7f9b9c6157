"""The document and docs page as the app serves them."""

from __future__ import annotations

from typing import Any

import httpx
import yaml
from fastapi import FastAPI

from fastapi_streaming import StreamingAPI
from fastapi_streaming.asyncapi.docs import CDN_CSS_URL, CDN_JS_URL, STATIC_DIR


def make_app(**options: Any) -> tuple[FastAPI, StreamingAPI]:
    streaming = StreamingAPI(title="Routes", **options)

    @streaming.subscribe("/ticks/{n:int}")
    async def ticks(event: dict[str, Any], n: int) -> dict[str, Any]:
        """Ticks."""
        return event

    app = FastAPI()
    streaming.init_app(app)
    return app, streaming


def client_for(
    app: FastAPI, base_url: str = "http://testserver", root_path: str = ""
) -> httpx.AsyncClient:
    """An in-process client: these routes need no lifespan (no broker)."""
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url=base_url)


async def test_json_and_yaml_documents_in_every_version() -> None:
    app, _ = make_app()
    async with client_for(app, "http://testserver") as client:
        as_json = await client.get("/asyncapi.json")
        as_yaml = await client.get("/asyncapi.yaml")
        old = await client.get("/asyncapi.json", params={"version": "2.6.0"})
        newer = await client.get("/asyncapi.yaml", params={"version": "3.1.0"})
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.json()["asyncapi"] == "3.0.0"
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.text) == as_json.json()
    assert old.json()["asyncapi"] == "2.6.0"
    assert yaml.safe_load(newer.text)["asyncapi"] == "3.1.0"


async def test_servers_use_the_requests_host_unless_a_public_url_is_set() -> None:
    app, _ = make_app()
    async with client_for(app, "https://streams.test:8443") as client:
        servers = (await client.get("/asyncapi.json")).json()["servers"]
    assert servers["websocket"]["host"] == "streams.test:8443"
    assert servers["websocket"]["protocol"] == "wss"
    app, _ = make_app(public_url="http://public.example.com/")
    async with client_for(app, "https://streams.test:8443") as client:
        servers = (await client.get("/asyncapi.json")).json()["servers"]
    assert servers["sse"]["host"] == "public.example.com"
    assert servers["sse"]["protocol"] == "http"


async def test_an_unknown_version_is_a_400() -> None:
    app, _ = make_app()
    async with client_for(app) as client:
        answer = await client.get("/asyncapi.json", params={"version": "9.9.9"})
    assert answer.status_code == 400
    assert "9.9.9" in answer.json()["detail"]


async def test_the_default_version_is_configurable() -> None:
    app, _ = make_app(asyncapi_version="2.6.0")
    async with client_for(app) as client:
        assert (await client.get("/asyncapi.json")).json()["asyncapi"] == "2.6.0"


async def test_urls_are_configurable_and_none_turns_them_off() -> None:
    app, _ = make_app(
        asyncapi_url="/spec/events.json", asyncapi_yaml_url=None, asyncapi_docs_url="/events"
    )
    async with client_for(app) as client:
        assert (await client.get("/spec/events.json")).status_code == 200
        assert (await client.get("/asyncapi.json")).status_code == 404
        assert (await client.get("/asyncapi.yaml")).status_code == 404
        page = await client.get("/events")
    assert page.status_code == 200
    assert '"url": "/spec/events.json"' in page.text
    app, _ = make_app(asyncapi_url=None, asyncapi_yaml_url=None, asyncapi_docs_url=None)
    async with client_for(app) as client:
        for path in ("/asyncapi.json", "/asyncapi.yaml", "/asyncapi"):
            assert (await client.get(path)).status_code == 404


async def test_routes_stay_out_of_the_openapi_schema() -> None:
    app, _ = make_app()
    async with client_for(app) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if "asyncapi" in path]


async def test_the_docs_page_loads_the_bundle_the_app_serves() -> None:
    app, _ = make_app()
    async with client_for(app) as client:
        page = await client.get("/asyncapi")
        script = await client.get("/asyncapi/static/asyncapi-react.js")
        style = await client.get("/asyncapi/static/asyncapi-react.css")
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="/asyncapi/static/asyncapi-react.js">' in page.text
    assert '<link rel="stylesheet" href="/asyncapi/static/asyncapi-react.css">' in page.text
    assert '"url": "/asyncapi.json"' in page.text
    assert "AsyncApiStandalone.render" in page.text
    assert script.status_code == 200
    assert script.content == (STATIC_DIR / "asyncapi-react.js").read_bytes()
    assert "javascript" in script.headers["content-type"]
    assert style.content == (STATIC_DIR / "asyncapi-react.css").read_bytes()


async def test_the_bundle_can_come_from_a_cdn() -> None:
    app, _ = make_app(asyncapi_js_url=CDN_JS_URL, asyncapi_css_url=CDN_CSS_URL)
    async with client_for(app) as client:
        page = await client.get("/asyncapi")
        local = await client.get("/asyncapi/static/asyncapi-react.js")
    assert f'<script src="{CDN_JS_URL}">' in page.text
    assert CDN_CSS_URL in page.text
    assert local.status_code == 404


async def test_the_docs_page_follows_the_apps_root_path() -> None:
    app, _ = make_app()
    async with client_for(app, root_path="/proxy") as client:
        page = await client.get("/asyncapi")
    assert '"url": "/proxy/asyncapi.json"' in page.text
    assert 'src="/proxy/asyncapi/static/asyncapi-react.js"' in page.text


async def test_the_served_document_follows_topic_changes() -> None:
    app, streaming = make_app()
    async with client_for(app) as client:
        before = (await client.get("/asyncapi.yaml")).text
        assert (await client.get("/asyncapi.yaml")).text == before

        @streaming.publish("/late")
        async def late(event: int) -> int:
            return event

        after = yaml.safe_load((await client.get("/asyncapi.yaml")).text)
    assert "late" in after["channels"]
    assert "late" not in yaml.safe_load(before)["channels"]


async def test_the_title_cannot_break_out_of_the_page() -> None:
    app, streaming = make_app()
    streaming.title = '</title><script>alert("x")</script>'
    async with client_for(app) as client:
        page = (await client.get("/asyncapi")).text
    assert "<script>alert" not in page


async def test_many_hosts_cannot_grow_the_cache() -> None:
    app, streaming = make_app()
    for number in range(40):
        async with client_for(app, base_url=f"http://host-{number}.test") as client:
            answer = await client.get("/asyncapi.json")
            assert answer.json()["servers"]["sse"]["host"] == f"host-{number}.test"
    assert len(streaming.asyncapi_source.cache.items) <= streaming.asyncapi_source.cache.size

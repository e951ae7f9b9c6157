"""StreamingRouter: declaring topics away from the API object, included like APIRouter."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends
from pydantic import BaseModel

from fastapi_streaming import Mode, StreamingAPI, StreamingRouter
from fastapi_streaming.asyncapi import get_asyncapi


class Quote(BaseModel):
    symbol: str
    price: float


def test_an_included_router_adds_its_topics_under_both_prefixes() -> None:
    router = StreamingRouter(prefix="/stocks")

    @router.subscribe("/{symbol}")
    async def quotes(event: Quote, symbol: str) -> Quote:
        return event

    @router.publish("")
    async def all_quotes(event: Quote) -> Quote:
        return event

    streaming = StreamingAPI()
    streaming.include_router(router, prefix="/v1")
    assert sorted(topic.address for topic in streaming.topics) == [
        "/v1/stocks",
        "/v1/stocks/{symbol}",
    ]
    topic = streaming.topics.get("/v1/stocks/{symbol}")
    assert topic is not None and topic.parameters == ("symbol",)
    assert topic.subscribe is not None and topic.subscribe.handler is quotes


def test_a_router_keeps_its_declarations_until_included() -> None:
    router = StreamingRouter()

    @router.subscribe("/news")
    async def news(event: dict[str, Any]) -> dict[str, Any]:
        return event

    assert router.topics is None
    assert [declaration.address for declaration in router.declarations] == ["/news"]
    assert router.add_operation(Mode.PUBLISH, "/news", None) is None


def test_an_include_prefix_may_bring_the_parameters_the_handler_asks_for() -> None:
    router = StreamingRouter()

    @router.subscribe("/messages")
    async def messages(event: dict[str, Any], room: int) -> dict[str, Any]:
        return {**event, "room": room}

    streaming = StreamingAPI()
    streaming.include_router(router, prefix="/rooms/{room:int}")
    topic = streaming.topics.get("/rooms/{room:int}/messages")
    assert topic is not None
    assert topic.subscribe is not None and topic.subscribe.plan is not None
    assert topic.subscribe.plan.path_params == ("room",)
    assert topic.subscribe.plan.event_param == "event"


def test_scopes_tags_and_dependencies_add_up_from_the_outside_in() -> None:
    def audit() -> None: ...

    def rate_limit() -> None: ...

    def own() -> None: ...

    inner = StreamingRouter(
        prefix="/orders",
        tags=["orders"],
        scopes=["orders:read"],
        dependencies=[Depends(rate_limit)],
    )

    @inner.subscribe(
        "/{order_id}", scopes=["orders:detail"], tags=["detail"], dependencies=[Depends(own)]
    )
    async def order(event: dict[str, Any], order_id: str) -> dict[str, Any]:
        return event

    outer = StreamingRouter(prefix="/shop", tags=["shop"])
    outer.include_router(inner, tags=["included"], scopes=["shop:use"])
    streaming = StreamingAPI()
    streaming.include_router(outer, prefix="/v2", dependencies=[Depends(audit)])

    topic = streaming.topics.get("/v2/shop/orders/{order_id}")
    assert topic is not None and topic.subscribe is not None
    operation = topic.subscribe
    assert operation.scopes == ("shop:use", "orders:read", "orders:detail")
    assert operation.tags == ("shop", "included", "orders", "detail")
    assert operation.plan is not None
    assert [sub.call for sub, _ in operation.plan.side_dependencies] == [audit, rate_limit, own]


def test_deprecated_and_include_in_schema_pass_down_and_reach_the_document() -> None:
    old = StreamingRouter(prefix="/old", deprecated=True, tags=["legacy"])

    @old.subscribe("/prices")
    async def prices(event: Quote) -> Quote:
        return event

    internal = StreamingRouter(prefix="/internal")

    @internal.subscribe("/health")
    async def health(event: dict[str, Any]) -> dict[str, Any]:
        return event

    streaming = StreamingAPI()

    @streaming.subscribe("/quotes", tags=["market"])
    async def quotes(event: Quote) -> Quote:
        return event

    @streaming.publish("/quotes", include_in_schema=False)
    async def send_quote(event: Quote) -> Quote:
        return event

    streaming.include_router(old)
    streaming.include_router(internal, include_in_schema=False)

    # Left out of the document, still served.
    health_topic = streaming.topics.get("/internal/health")
    assert health_topic is not None and health_topic.subscribe is not None
    assert health_topic.subscribe.include_in_schema is False

    v3 = get_asyncapi(streaming)
    assert set(v3["channels"]) == {"quotes", "old_prices"}
    assert set(v3["operations"]) == {"subscribe_quotes", "subscribe_old_prices"}
    assert v3["operations"]["subscribe_quotes"]["tags"] == [{"name": "market"}]
    assert "x-deprecated" not in v3["operations"]["subscribe_quotes"]
    legacy = v3["operations"]["subscribe_old_prices"]
    assert legacy["tags"] == [{"name": "legacy"}]
    assert legacy["x-deprecated"] is True

    v2 = get_asyncapi(streaming, version="2.6.0")
    assert set(v2["channels"]) == {"/quotes", "/old/prices"}
    assert "publish" not in v2["channels"]["/quotes"]
    assert v2["channels"]["/quotes"]["subscribe"]["tags"] == [{"name": "market"}]
    assert v2["channels"]["/old/prices"]["subscribe"]["x-deprecated"] is True


def test_a_router_cannot_include_itself_and_prefixes_are_checked() -> None:
    router = StreamingRouter()
    with pytest.raises(ValueError, match="itself"):
        router.include_router(router)
    with pytest.raises(ValueError, match="must start with '/'"):
        StreamingRouter(prefix="stocks")
    with pytest.raises(ValueError, match="not end with '/'"):
        StreamingAPI().include_router(router, prefix="/stocks/")


def test_a_topic_declared_twice_through_routers_is_refused() -> None:
    router = StreamingRouter()

    @router.subscribe("/news")
    async def news(event: dict[str, Any]) -> dict[str, Any]:
        return event

    streaming = StreamingAPI()
    streaming.include_router(router)
    with pytest.raises(ValueError, match="already has a subscribe operation"):
        streaming.include_router(router)


class Total(BaseModel):
    total: float


async def test_a_routers_publish_topic_can_reply() -> None:
    router = StreamingRouter(prefix="/calc")

    @router.publish("/sum", reply=Total)
    async def add(event: dict[str, Any]) -> Total:
        return Total(total=sum(event["numbers"]))

    streaming = StreamingAPI()
    streaming.include_router(router)
    topic = streaming.topics.get("/calc/sum")
    assert topic is not None and topic.publish is not None and topic.publish.reply is not None
    async with streaming.running() as runtime:
        _, reply = await runtime.request("/calc/sum", data={"numbers": [1, 2]})
    assert reply == b'{"total":3.0}'
    operation = get_asyncapi(streaming)["operations"]["publish_calc_sum"]
    assert operation["reply"]["messages"] == [{"$ref": "#/channels/calc_sum/messages/Total"}]


def test_only_a_publish_topic_can_reply() -> None:
    router = StreamingRouter()
    with pytest.raises(ValueError, match="Only a publish topic can reply"):
        router.add_operation(Mode.SUBSCRIBE, "/x", None, reply=Total)
    with pytest.raises(ValueError, match="reply_address needs reply="):
        router.add_operation(Mode.PUBLISH, "/x", None, reply_address="$message.payload#/to")

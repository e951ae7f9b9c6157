"""Parts of the delivery path: the address check it makes per request, and its slots."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from fastapi_streaming.websub import WebSubSettings
from fastapi_streaming.websub.outbound import split_callback
from fastapi_streaming.websub.slots import Slots
from fastapi_streaming.websub.ssrf import CallbackGuard, CallbackRefused


@pytest.mark.parametrize(
    "callback", ["http://127.0.0.1:8000/cb", "http://[::1]/cb", "http://[::ffff:10.0.0.1]/"]
)
async def test_ip_literals_are_checked_at_delivery_time_without_a_lookup(callback: str) -> None:
    guard = CallbackGuard(WebSubSettings())
    with pytest.raises(CallbackRefused, match=r"loopback|private"):
        await guard.checked_address(httpx.URL(callback))


async def test_a_checked_name_is_pinned_to_an_allowed_address() -> None:
    guard = CallbackGuard(WebSubSettings(allow_networks=("127.0.0.0/8", "::1/128")))
    address = await guard.checked_address(httpx.URL("http://localhost:8000/cb"))
    assert guard.allowed(address)
    refusing = CallbackGuard(WebSubSettings())
    with pytest.raises(CallbackRefused, match="loopback"):
        await refusing.checked_address(httpx.URL("http://localhost:8000/cb"))


def test_a_callback_is_split_into_what_its_request_line_and_host_header_need() -> None:
    target = split_callback("https://hooks.example:8443/a%20b/cb?x=1&y=%7E")
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example", 8443)
    assert target.target == b"/a%20b/cb?x=1&y=%7E"
    assert target.host_header == b"hooks.example:8443"
    assert split_callback("http://hooks.example/").host_header == b"hooks.example"
    assert split_callback("http://hooks.example/").port == 80


async def test_slots_admit_at_most_their_size_first_come_first_served() -> None:
    slots = Slots(2)
    running: list[int] = []
    order: list[int] = []
    release = asyncio.Event()

    async def work(n: int) -> None:
        async with slots:
            running.append(n)
            order.append(n)
            assert len(running) <= 2
            await release.wait()
            running.remove(n)

    tasks = [asyncio.create_task(work(n)) for n in range(5)]
    await asyncio.sleep(0.01)
    assert sorted(running) == [0, 1]
    tasks[2].cancel()  # a waiter that gives up takes no slot with it
    release.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert order == [0, 1, 3, 4]
    assert slots.free == 2

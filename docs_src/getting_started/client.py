import asyncio

import httpx
from httpx_sse import aconnect_sse

BASE_URL = "http://127.0.0.1:8000"


async def follow(symbol: str, count: int) -> list[str]:
    """Print the next ``count`` quotes of ``symbol`` as they arrive."""
    received = []
    async with (
        httpx.AsyncClient(base_url=BASE_URL, timeout=None) as client,
        aconnect_sse(client, "GET", f"/streams/sse/stocks/{symbol}") as source,
    ):
        async for event in source.aiter_sse():
            print(event.id, event.data)
            received.append(event.data)
            if len(received) == count:
                return received
    return received


if __name__ == "__main__":
    asyncio.run(follow("AAPL", 3))

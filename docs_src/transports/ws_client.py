import asyncio

from websockets.asyncio.client import connect

URL = "ws://127.0.0.1:8000/streams/ws"


async def main(count: int = 3) -> list[str]:
    received = []
    async with connect(URL) as ws:
        await ws.send('{"type": "subscribe", "id": 1, "topic": "/stocks/AAPL"}')
        async for message in ws:
            print(message)
            received.append(message)
            if len(received) == count:
                break
    return received


if __name__ == "__main__":
    asyncio.run(main())

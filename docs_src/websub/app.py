from fastapi import FastAPI
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI, WebSubSettings


class Quote(BaseModel):
    symbol: str
    price: float


streaming = StreamingAPI(
    title="Market data",
    websub=WebSubSettings(
        database_url="sqlite+aiosqlite:///websub.sqlite3",
        # Only to try it out on one machine: the hub refuses callbacks on loopback and
        # private networks unless they are allowed here. Remove it in production.
        allow_networks=("127.0.0.1/32",),
    ),
)


@streaming.subscribe("/stocks/{symbol}")
async def quotes(event: Quote, symbol: str) -> Quote:
    """Live quotes for one symbol."""
    return event


@streaming.publish("/stocks/{symbol}")
async def publish_quote(event: Quote, symbol: str) -> Quote:
    return event


app = FastAPI()
streaming.init_app(app)

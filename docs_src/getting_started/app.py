from fastapi import FastAPI
from pydantic import BaseModel

from fastapi_streaming import StreamingAPI


class Quote(BaseModel):
    symbol: str
    price: float


app = FastAPI()
streaming = StreamingAPI(title="Market data", version="1.0.0", broker="memory://")


@streaming.subscribe("/stocks/{symbol}")
async def quotes(event: Quote, symbol: str) -> Quote:
    """Live quotes for one symbol."""
    return event


@streaming.publish("/stocks/{symbol}")
async def publish_quote(event: Quote, symbol: str) -> Quote:
    """Clients may send quotes too; they are validated before they reach the broker."""
    return event


streaming.init_app(app)

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
    return event  # runs once per event, whatever the number of clients


@streaming.publish("/stocks/{symbol}")
async def publish_quote(event: Quote, symbol: str) -> Quote:
    return event  # validated by pydantic; what it returns goes to the broker


streaming.init_app(app)

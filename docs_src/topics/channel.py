from pydantic import BaseModel

from fastapi_streaming import StreamingAPI


class Quote(BaseModel):
    symbol: str
    price: float


streaming = StreamingAPI()


# --8<-- [start:channel]
@streaming.subscribe("/stocks/{symbol}", channel="market.quotes.{symbol}")
# --8<-- [end:channel]
async def quotes(event: Quote, symbol: str) -> Quote:
    return event

from .app import Quote, streaming


async def publish_a_quote() -> None:
    # --8<-- [start:emit]
    await streaming.emit("/stocks/AAPL", Quote(symbol="AAPL", price=187.12))
    # --8<-- [end:emit]

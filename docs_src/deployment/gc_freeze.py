import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from fastapi_streaming import StreamingAPI


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Everything the app needs is imported and started by now: it lives as long as the
    # process, so keep it out of every full collection from here on.
    gc.collect()
    gc.freeze()
    yield


app = FastAPI(lifespan=lifespan)
streaming = StreamingAPI(title="Quotes", version="1.0.0")
streaming.init_app(app)

from collections.abc import Collection, Mapping

from fastapi_streaming import hookimpl
from fastapi_streaming.processing import EngineContext, EngineFactory


class MyEngine:
    """Computes ``context.derived`` on another stream processor."""

    def __init__(self, context: EngineContext) -> None:
        self.derived = context.derived  # each: topic, sources, derivation, key_names
        self.broker_url = context.broker_url
        self.computing: set[str] = set()

    @property
    def owned(self) -> Collection[str]:
        return self.computing  # the derived topics this process computes now

    async def start(
        self,
    ) -> (
        None
    ): ...  # submit each derived topic's flow; raise UnsupportedDeclarationError if one can't

    async def stop(self) -> None: ...  # hand ownership over at once


@hookimpl
def fastapi_streaming_processing_engines() -> Mapping[str, EngineFactory]:
    return {"my-engine": MyEngine}

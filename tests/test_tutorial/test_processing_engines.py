"""The engines part of the stream processing guide: picking an engine by name, and the engine
boundary a plugin implements, through the same plugin manager as broker backends."""

from __future__ import annotations

import importlib.util

import pytest

from docs_src.plugins import quix_app
from docs_src.processing import engines, my_engine
from fastapi_streaming import StreamingAPI
from fastapi_streaming.plugins import available_engines, get_plugin_manager
from fastapi_streaming.processing import ProcessingEngine, UnknownEngineError
from fastapi_streaming.processing.runner import Processing


def test_the_embedded_engine_is_the_default_and_a_plugin_is_picked_by_name() -> None:
    assert engines.embedded.processing_engine == "embedded"
    assert engines.on_quix.processing_engine == "quix"
    assert "embedded" in available_engines()


async def test_the_embedded_engine_runs_through_the_boundary() -> None:
    streaming = StreamingAPI(broker="memory://")
    async with streaming.running():
        assert isinstance(streaming.processing, Processing)
        assert isinstance(streaming.processing, ProcessingEngine)


async def test_an_engine_of_a_plugin_receives_the_derived_topics() -> None:
    manager = get_plugin_manager()
    manager.register(my_engine, name="my-engine")
    assert "my-engine" in available_engines(manager)
    streaming = StreamingAPI(broker="memory://", plugin_manager=manager)
    streaming.include_router(quix_app.streaming.router)
    streaming.processing_engine = "my-engine"
    async with streaming.running():
        engine = streaming.processing
        assert isinstance(engine, my_engine.MyEngine)
        (derived,) = engine.derived
        assert derived.address == "/clicks/{page}/per-second"
        assert [source.address for source in derived.sources] == ["/clicks/{page}"]
        assert derived.key_names == ("page",)
        assert derived.derivation.describe()["window"] == {"type": "tumbling", "size": 1.0}


async def test_an_engine_that_is_not_installed_fails_when_the_app_starts() -> None:
    streaming = StreamingAPI(broker="memory://", processing_engine="nope")
    with pytest.raises(UnknownEngineError, match=r"'nope'.*Installed: .*embedded"):
        async with streaming.running():
            pass


@pytest.mark.skipif(
    importlib.util.find_spec("fastapi_streaming_quix") is None,
    reason="the quix engine plugin is not installed",
)
def test_the_quix_plugin_registers_its_engine() -> None:
    assert "quix" in available_engines()

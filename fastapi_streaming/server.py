"""Run an app with uvicorn so that streams end cleanly when the server stops.

Uvicorn waits for open connections to finish before it runs the app's lifespan shutdown, and an
event stream never finishes by itself: a plain ``uvicorn app:app`` would hang on Ctrl+C until
``--timeout-graceful-shutdown`` runs out, then cut streams off. This server first asks every
running streaming API to end its streams (SSE gets a final ``close`` event, sockets close with
1001), then shuts down as uvicorn does.

It also lets the app abort a connection (the ``fastapi_streaming.connection`` ASGI extension,
:mod:`fastapi_streaming.transports.abort`): an event stream whose client stopped reading is
then closed within seconds instead of staying open with everything written to it.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import signal
import socket
from typing import Any

import uvicorn

from .reuseport import bind_reuseport_sockets, can_reuse_port
from .runtime import StreamingRuntime
from .security.redaction import install_redaction
from .transports.abort import offer_connection_control


class _ConnectionControlled:
    """Mixed into uvicorn's HTTP and WebSocket protocol classes: each request's scope gets the
    controls of its connection's transport."""

    app: Any

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        app = self.app

        async def with_control(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] in ("http", "websocket"):
                offer_connection_control(scope, transport)
            await app(scope, receive, send)

        self.app = with_control


def _controlled(protocol: type[Any]) -> type[Any]:
    if issubclass(protocol, _ConnectionControlled):
        return protocol
    return type(f"Controlled{protocol.__name__}", (_ConnectionControlled, protocol), {})


class StreamingServer(uvicorn.Server):
    """A uvicorn server that ends event streams before waiting for connections to close, and
    lets the app abort a connection whose client stopped reading.

    With ``gc_freeze`` (on in :func:`run`, off for a server made directly, which may share its
    process with other work), once the app has started, everything alive then (modules, the app,
    its routes and models: tens of thousands of objects) moves out of the garbage collector's
    sight with :func:`gc.freeze`. Those objects live as long as the process anyway, and every
    full collection would otherwise walk them all while every client's next event waits.
    ``gc_threshold`` sets how many new container objects start a young collection.
    """

    def __init__(
        self, config: uvicorn.Config, *, gc_freeze: bool = False, gc_threshold: int | None = None
    ) -> None:
        super().__init__(config)
        self.gc_freeze = gc_freeze
        self.gc_threshold = gc_threshold

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        config = self.config
        config.http_protocol_class = _controlled(config.http_protocol_class)
        if config.ws_protocol_class is not None:
            config.ws_protocol_class = _controlled(config.ws_protocol_class)
        await super().startup(sockets=sockets)
        tune_collector(freeze=self.gc_freeze, threshold=self.gc_threshold)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for runtime in list(StreamingRuntime.running):
            await runtime.end_streams()
        await super().shutdown(sockets=sockets)


def tune_collector(*, freeze: bool, threshold: int | None) -> None:
    """Freeze the heap as it is now (after a collection, so no garbage stays frozen), and set
    the young generation's threshold; see :class:`StreamingServer`."""
    if threshold is not None:
        gc.set_threshold(threshold, *gc.get_threshold()[1:])
    if freeze:
        gc.collect()
        gc.freeze()


def run(
    app: Any, *, gc_freeze: bool = True, gc_threshold: int | None = None, **options: Any
) -> None:
    """Like ``uvicorn.run(app, ...)``, with :class:`StreamingServer` in every worker process.

    With ``workers=N`` the parent binds one socket per worker (``SO_REUSEPORT``, so the kernel
    spreads connections evenly; one shared socket where that is not available), starts N worker
    processes, and passes SIGINT/SIGTERM on to them as SIGTERM, so each worker ends its streams
    cleanly.
    With ``reload=True``, uvicorn's reloader restarts a :class:`StreamingServer` process
    whenever the code changes. ``gc_freeze`` and ``gc_threshold`` tune each worker's garbage
    collector once the app has started (see :class:`StreamingServer`).
    """
    tuning: dict[str, Any] = {"gc_freeze": gc_freeze, "gc_threshold": gc_threshold}
    config = uvicorn.Config(app, **options)
    if config.should_reload:
        if not isinstance(app, str):
            raise ValueError("Reloading needs the app as an import string: 'module:app'.")
        from uvicorn.supervisors import ChangeReload

        sock = config.bind_socket()
        server = StreamingServer(config, **tuning)
        ChangeReload(config, target=server.run, sockets=[sock]).run()
        return
    if config.workers <= 1:
        _serve(config, None, tuning)
        return
    if not isinstance(app, str):
        raise ValueError("Several workers need the app as an import string: 'module:app'.")
    if can_reuse_port(config):
        sockets = bind_reuseport_sockets(config, config.workers)
    else:
        sockets = [config.bind_socket()] * config.workers
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_serve, args=(config, sock, tuning), name=f"worker-{index}")
        for index, sock in enumerate(sockets)
    ]
    for worker in workers:
        worker.start()

    def stop(signum: int, frame: object) -> None:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for worker in workers:
        worker.join()
    for sock in set(sockets):
        sock.close()


def _serve(config: uvicorn.Config, sock: socket.socket | None, tuning: dict[str, Any]) -> None:
    config.configure_logging()
    install_redaction()  # before the app is imported, in case it never calls init_app
    # uvicorn re-raises the signal it stopped on; Ctrl+C is how a server is meant to stop.
    with contextlib.suppress(KeyboardInterrupt):
        StreamingServer(config, **tuning).run(sockets=[sock] if sock else None)

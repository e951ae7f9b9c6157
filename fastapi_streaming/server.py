"""Run an app with uvicorn so that streams end cleanly when the server stops.

Uvicorn waits for open connections to finish before it runs the app's lifespan shutdown, and an
event stream never finishes by itself: a plain ``uvicorn app:app`` would hang on Ctrl+C until
``--timeout-graceful-shutdown`` runs out, then cut streams off. This server first asks every
running streaming API to end its streams (SSE gets a final ``close`` event, sockets close with
1001), then shuts down as uvicorn does.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import socket
from typing import Any

import uvicorn

from .runtime import StreamingRuntime
from .security.redaction import install_redaction


class StreamingServer(uvicorn.Server):
    """A uvicorn server that ends event streams before waiting for connections to close."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for runtime in list(StreamingRuntime.running):
            await runtime.end_streams()
        await super().shutdown(sockets=sockets)


def run(app: Any, **options: Any) -> None:
    """Like ``uvicorn.run(app, ...)``, with :class:`StreamingServer` in every worker process.

    With ``workers=N`` the parent binds the socket, starts N worker processes that share it,
    and passes SIGINT/SIGTERM on to them as SIGTERM, so each worker ends its streams cleanly.
    With ``reload=True``, uvicorn's reloader restarts a :class:`StreamingServer` process
    whenever the code changes.
    """
    config = uvicorn.Config(app, **options)
    if config.should_reload:
        if not isinstance(app, str):
            raise ValueError("Reloading needs the app as an import string: 'module:app'.")
        from uvicorn.supervisors import ChangeReload

        sock = config.bind_socket()
        ChangeReload(config, target=StreamingServer(config).run, sockets=[sock]).run()
        return
    if config.workers <= 1:
        _serve(config, None)
        return
    if not isinstance(app, str):
        raise ValueError("Several workers need the app as an import string: 'module:app'.")
    sock = config.bind_socket()
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_serve, args=(config, sock), name=f"worker-{index}")
        for index in range(config.workers)
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
    sock.close()


def _serve(config: uvicorn.Config, sock: socket.socket | None) -> None:
    config.configure_logging()
    install_redaction()  # before the app is imported, in case it never calls init_app
    # uvicorn re-raises the signal it stopped on; Ctrl+C is how a server is meant to stop.
    with contextlib.suppress(KeyboardInterrupt):
        StreamingServer(config).run(sockets=[sock] if sock else None)

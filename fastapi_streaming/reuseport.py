"""One listening socket per worker process, so the kernel spreads connections evenly.

When worker processes share one listening socket, whichever is idle in ``accept`` first takes
the next connection: one worker busy with its streams lets another take most new clients
(640/360 at 1,000 clients, once 199/1). With ``SO_REUSEPORT`` every worker listens on a socket
of its own, bound to the same address and port, and the kernel hands each new connection to
one of them by a hash of its addresses: an even share whatever each worker is doing.
"""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn

logger = logging.getLogger("uvicorn.error")


def can_reuse_port(config: uvicorn.Config) -> bool:
    """Whether the workers can each have a socket: TCP on Linux (elsewhere the option exists
    but does not balance, or does not exist)."""
    return (
        sys.platform.startswith("linux")
        and hasattr(socket, "SO_REUSEPORT")
        and config.uds is None
        and config.fd is None
    )


def bind_reuseport_sockets(config: uvicorn.Config, count: int) -> list[socket.socket]:
    """``count`` sockets bound to the configured host and port (port 0: one free port for all)."""
    host = config.host or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    port = config.port
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        logger.error(exc)
        sys.exit(3)  # uvicorn's exit status when it cannot bind
    scheme = "https" if config.is_ssl else "http"
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    logger.info(
        "Uvicorn running on %s://%s:%d with one socket per worker (Press CTRL+C to quit)",
        scheme,
        shown,
        port,
    )
    return sockets

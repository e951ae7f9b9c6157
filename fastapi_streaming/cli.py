"""The ``fastapi-streaming`` command: run an app, list broker backends.

Each subcommand is a small function that adds its parser and returns its handler, so a new one
(such as ``asyncapi``) is one more function in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from .asyncapi.cli import add_asyncapi_command

Handler = Callable[[argparse.Namespace], int]


def add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "run",
        help="serve an app with uvicorn, ending event streams cleanly on shutdown",
        description="Serve MODULE:APP like uvicorn does; on Ctrl+C or SIGTERM, end every "
        "SSE stream and WebSocket first (1001), then stop. The options are uvicorn's.",
    )
    parser.add_argument("app", help="the app to serve, as module:attribute")
    parser.add_argument("--host", default="127.0.0.1", help="bind to this address")
    parser.add_argument("--port", type=int, default=8000, help="bind to this port")
    parser.add_argument("--uds", help="bind to this UNIX domain socket")
    parser.add_argument(
        "--app-dir",
        default=".",
        help="look for the app's module in this folder (default: the current directory)",
    )
    parser.add_argument("--factory", action="store_true", help="APP is a function making the app")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--reload", action="store_true", help="restart when the code changes")
    parser.add_argument(
        "--reload-dir", action="append", dest="reload_dirs", help="watch this folder (repeatable)"
    )
    parser.add_argument("--log-level", default="info", help="critical, error, warning, info...")
    parser.add_argument("--log-config", help="a logging configuration file (.ini, .json, .yaml)")
    parser.add_argument(
        "--access-log", action=argparse.BooleanOptionalAction, default=True, help="log requests"
    )
    parser.add_argument("--root-path", default="", help="ASGI root path behind a proxy")
    parser.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="trust X-Forwarded-For and X-Forwarded-Proto from --forwarded-allow-ips",
    )
    parser.add_argument("--forwarded-allow-ips", help="proxies to trust, comma-separated")
    parser.add_argument("--timeout-keep-alive", type=int, default=5, help="seconds (default 5)")
    parser.add_argument(
        "--timeout-graceful-shutdown",
        type=int,
        help="seconds to wait for connections on shutdown, after streams have ended",
    )
    parser.add_argument("--limit-concurrency", type=int, help="answer 503 beyond this many")
    parser.add_argument("--backlog", type=int, default=2048, help="pending connections queue")
    parser.add_argument("--ssl-keyfile", help="TLS private key file")
    parser.add_argument("--ssl-certfile", help="TLS certificate file")
    parser.add_argument("--ws-max-size", type=int, default=16 * 1024 * 1024, help="bytes")
    parser.add_argument("--ws-ping-interval", type=float, default=20.0, help="seconds")
    parser.add_argument("--ws-ping-timeout", type=float, default=20.0, help="seconds")
    parser.add_argument("--env-file", help="environment variables to load before the app")
    parser.add_argument(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after startup, keep the app's own objects out of the garbage collector's full "
        "collections (gc.freeze(); default on)",
    )
    parser.add_argument(
        "--gc-threshold",
        type=int,
        help="new objects that start a young garbage collection (default: Python's, 700)",
    )
    parser.set_defaults(handler=run_command)


def run_command(arguments: argparse.Namespace) -> int:
    from .server import run

    # Like uvicorn's command: the app's module is found in the current directory.
    app_dir = os.path.abspath(arguments.app_dir)
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    options = {
        name: getattr(arguments, name)
        for name in (
            "host",
            "port",
            "uds",
            "factory",
            "workers",
            "reload",
            "reload_dirs",
            "log_level",
            "log_config",
            "access_log",
            "root_path",
            "proxy_headers",
            "forwarded_allow_ips",
            "timeout_keep_alive",
            "timeout_graceful_shutdown",
            "limit_concurrency",
            "backlog",
            "ssl_keyfile",
            "ssl_certfile",
            "ws_max_size",
            "ws_ping_interval",
            "ws_ping_timeout",
            "env_file",
            "gc_freeze",
            "gc_threshold",
        )
    }
    if arguments.log_config is None:
        del options["log_config"]  # uvicorn's own logging configuration
    run(arguments.app, **options)
    return 0


def add_backends(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "backends", help="list the broker backends installed, by URL scheme"
    )
    parser.set_defaults(handler=backends_command)


def backends_command(arguments: argparse.Namespace) -> int:
    from .brokers.builtin import missing_driver
    from .plugins import available_backends

    backends = sorted(available_backends().values(), key=lambda info: info.scheme)
    rows = [("SCHEME", "PROVIDED BY", "")] + [
        (info.scheme, info.provider, missing_driver(info.factory) or "") for info in backends
    ]
    scheme_width = max(len(row[0]) for row in rows)
    provider_width = max(len(row[1]) for row in rows)
    for scheme, provider, note in rows:
        line = f"{scheme.ljust(scheme_width)}  {provider.ljust(provider_width)}  {note}"
        print(line.rstrip())
    return 0


COMMANDS = [add_run, add_backends, add_asyncapi_command]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fastapi-streaming", description="Streaming APIs for FastAPI."
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    arguments = parser.parse_args(argv)
    handler: Handler = arguments.handler
    return handler(arguments)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

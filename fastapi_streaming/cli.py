"""The ``fastapi-streaming`` command: run an app, list broker backends.

Each subcommand is a small function that adds its parser and returns its handler, so a new one
(such as ``asyncapi``) is one more function in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .asyncapi.cli import add_asyncapi_command

Handler = Callable[[argparse.Namespace], int]


def add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "run",
        help="serve an app with uvicorn, ending event streams cleanly on shutdown",
        description="Serve MODULE:APP like uvicorn does; on Ctrl+C or SIGTERM, end every "
        "SSE stream and WebSocket first (1001), then stop.",
    )
    parser.add_argument("app", help="the app to serve, as module:attribute")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--root-path", default="", help="ASGI root path behind a proxy")
    parser.set_defaults(handler=run_command)


def run_command(arguments: argparse.Namespace) -> int:
    from .server import run

    run(
        arguments.app,
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
        log_level=arguments.log_level,
        root_path=arguments.root_path,
    )
    return 0


def add_backends(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "backends", help="list the broker backends installed, by URL scheme"
    )
    parser.set_defaults(handler=backends_command)


def backends_command(arguments: argparse.Namespace) -> int:
    from .plugins import available_backends

    backends = sorted(available_backends().values(), key=lambda info: info.scheme)
    rows = [("SCHEME", "PROVIDED BY")] + [(info.scheme, info.provider) for info in backends]
    width = max(len(scheme) for scheme, _ in rows)
    for scheme, provider in rows:
        print(f"{scheme.ljust(width)}  {provider}")
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

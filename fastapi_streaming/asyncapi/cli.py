"""``fastapi-streaming asyncapi MODULE:APP``: write an app's AsyncAPI document to a file.

``add_asyncapi_command(subparsers)`` adds the command to the ``fastapi-streaming`` program
(:mod:`fastapi_streaming.cli`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from .document import cached_document, render
from .info import AsyncAPISource
from .versions import DEFAULT_VERSION, SUPPORTED_VERSIONS


class CommandError(Exception):
    """What the user gets told, without a traceback, before the command exits with 2."""


def add_asyncapi_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``asyncapi`` command to an ``argparse`` subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "asyncapi",
        help="write the AsyncAPI document of an app",
        description="Write the AsyncAPI document of a streaming API, as the app serves it.",
    )
    parser.add_argument(
        "app",
        metavar="MODULE:APP",
        help="the FastAPI app (or the StreamingAPI) to describe, such as example_app.main:app",
    )
    parser.add_argument("--format", choices=("json", "yaml"), default="json")
    parser.add_argument(
        "--asyncapi-version",
        choices=SUPPORTED_VERSIONS,
        default=None,
        help=f"the AsyncAPI version to write (default: the app's, {DEFAULT_VERSION} unless set)",
    )
    parser.add_argument(
        "--public-url",
        default=None,
        help="where clients reach the app, for the document's servers "
        "(default: the app's public_url, or http://localhost:8000)",
    )
    parser.add_argument("-o", "--output", type=Path, default=None, help="file to write (stdout)")
    parser.set_defaults(handler=run_asyncapi_command)
    return parser


def run_asyncapi_command(args: argparse.Namespace) -> int:
    try:
        source = find_asyncapi_source(args.app)
        document = cached_document(source, args.asyncapi_version, base_url=args.public_url)
    except CommandError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    text = render(document, args.format)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


def find_asyncapi_source(reference: str) -> AsyncAPISource:
    """Import ``module:attribute`` and find what its streaming API's document is built from
    (the attribute is a :class:`~fastapi_streaming.StreamingAPI` or an app it was added to).
    """
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise CommandError(f"{reference!r} is not MODULE:APP (for example example_app.main:app).")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CommandError(
            f"Could not import module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise CommandError(f"Module {module_name!r} has no attribute {attribute!r}.")
        target = getattr(target, part)
    for candidate in (target, getattr(getattr(target, "state", None), "fastapi_streaming", None)):
        source = getattr(candidate, "asyncapi_source", None)
        if isinstance(source, AsyncAPISource):
            return source
    raise CommandError(
        f"{reference} is a {type(target).__name__}, not a FastAPI app with a streaming API "
        "(call streaming.init_app(app)) nor a StreamingAPI."
    )

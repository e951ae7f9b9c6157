"""References to other files: resolved before a document is read.

A document split over several files (``$ref: '../common/messages.yaml#/commentLiked'``) is
bundled into one: every reference to another file is replaced by what it names, resolved
against the location of the file it is written in, so the rest of the importer only ever
follows references within the document (``#/...``). Remote references (``https://...``) are
fetched by nobody unless the user passes a ``resolver``: importing a document must not make
network requests behind the user's back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .errors import AsyncAPIImportError, pointer

#: Returns the parsed document at a URL (``resolver=`` of ``StreamingAPI.from_asyncapi``).
Resolver = Callable[[str], Any]


class ReferenceBundler:
    """Inline the references to other files of one document, file by file."""

    def __init__(self, base: Path | None, resolver: Resolver | None = None) -> None:
        self.base = base
        self.resolver = resolver
        self._files: dict[str, Any] = {}

    def bundle(self, document: Any) -> Any:
        return self._walk(document, self.base, None, [], ())

    def _walk(
        self,
        node: Any,
        base: Path | None,
        source: Any,
        where: list[str | int],
        chain: tuple[str, ...],
    ) -> Any:
        """Copy ``node``; ``source`` is the other file it was read from (None: the document)."""
        if isinstance(node, list):
            return [
                self._walk(item, base, source, [*where, i], chain) for i, item in enumerate(node)
            ]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and (source is not None or not ref.startswith("#")):
            return self._inline(ref, base, source, where, chain)
        return {
            key: self._walk(value, base, source, [*where, key], chain)
            for key, value in node.items()
        }

    def _inline(
        self,
        ref: str,
        base: Path | None,
        source: Any,
        where: list[str | int],
        chain: tuple[str, ...],
    ) -> Any:
        location, _, fragment = ref.partition("#")
        at = pointer([*where, "$ref"])
        if not location:  # "#/..." inside another file: a place in that file
            target_doc, target_base, key = source, base, f"{id(source)}#{fragment}"
        elif "://" in location:
            target_doc, target_base, key = self._remote(location, at), None, location
            key = f"{key}#{fragment}"
        else:
            if base is None:
                raise AsyncAPIImportError(
                    at,
                    f"{ref!r} is relative to the document's location: import the document "
                    "from its file (a path), not from a parsed dict.",
                )
            path = (base / location).resolve()
            target_doc, target_base, key = (
                self._file(path, ref, at),
                path.parent,
                f"{path}#{fragment}",
            )
        if key in chain:
            raise AsyncAPIImportError(at, f"{ref!r} refers back to itself.")
        target = _at_fragment(target_doc, fragment, ref, at)
        return self._walk(target, target_base, target_doc, where, (*chain, key))

    def _file(self, path: Path, ref: str, at: str) -> Any:
        key = str(path)
        if key not in self._files:
            try:
                self._files[key] = yaml.safe_load(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise AsyncAPIImportError(at, f"{ref!r} cannot be read: {exc.strerror}.") from None
            except yaml.YAMLError as exc:
                raise AsyncAPIImportError(at, f"{ref!r} is neither JSON nor YAML: {exc}") from None
        return self._files[key]

    def _remote(self, url: str, at: str) -> Any:
        if self.resolver is None:
            raise AsyncAPIImportError(
                at,
                f"{url!r} is a remote reference, which is not fetched: pass "
                "resolver=<function of the URL that returns the parsed document> to "
                "from_asyncapi, or copy the file next to the document and refer to it by a "
                "relative path.",
            )
        if url not in self._files:
            self._files[url] = self.resolver(url)
        return self._files[url]


def _at_fragment(document: Any, fragment: str, ref: str, at: str) -> Any:
    node = document
    for part in [p for p in fragment.split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise AsyncAPIImportError(at, f"{ref!r} points at nothing.")
    return node


def needs_bundling(node: Any) -> bool:
    """True when ``node`` refers to another file anywhere."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return True
        return any(needs_bundling(value) for value in node.values())
    if isinstance(node, list):
        return any(needs_bundling(item) for item in node)
    return False

"""A small cache of built documents, valid while the topics stay the same."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class DocumentCache(Generic[T]):
    """Built documents by key, valid while the topics' revision stays the same.

    Keys include the server URL, which comes from the request's ``Host`` header; the cache
    holds at most ``size`` entries, so clients sending many hosts cannot grow it.
    """

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.revision = -1
        self.items: dict[Hashable, T] = {}

    def get(self, revision: int, key: Hashable, build: Callable[[], T]) -> T:
        if revision != self.revision:
            self.items.clear()
            self.revision = revision
        found = self.items.get(key)
        if found is None:
            if len(self.items) >= self.size:
                del self.items[next(iter(self.items))]
            found = self.items[key] = build()
        return found

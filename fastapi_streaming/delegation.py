"""How :class:`~fastapi_streaming.StreamingAPI` hands its attributes and declarations on.

The API is configuration in front of narrow objects: its settings live on the objects it
hands out (the document's :class:`~fastapi_streaming.asyncapi.info.ApiInfo`, the transports'
:class:`~fastapi_streaming.context.StreamingContext`), and its declaring methods are those of
its own :class:`~fastapi_streaming.routing.StreamingRouter`. These two helpers say so once,
instead of a property or a copied signature per name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from .routing import StreamingRouter

T = TypeVar("T")
P = ParamSpec("P")


class HasRouter(Protocol):
    """What declares on a router of its own (a streaming API)."""

    @property
    def router(self) -> StreamingRouter: ...


class Setting(Generic[T]):
    """An attribute of the API that lives on the narrow objects it hands out, so changing it
    on the API changes what they see. Read from the first owner, written to every one.

    ``owners`` name the API's attributes that hold them (``"info"``, ``"context"``).
    """

    def __init__(self, *owners: str) -> None:
        self.owner = owners[0]
        self.owners = owners

    def __set_name__(self, cls: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, api: None, cls: type) -> Setting[T]: ...
    @overload
    def __get__(self, api: object, cls: type) -> T: ...
    def __get__(self, api: object | None, cls: type) -> T | Setting[T]:
        if api is None:
            return self
        value: T = getattr(getattr(api, self.owner), self.name)
        return value

    def __set__(self, api: object, value: T) -> None:
        for owner in self.owners:
            setattr(getattr(api, owner), self.name, value)


def on_router(
    method: Callable[Concatenate[StreamingRouter, P], T],
) -> Callable[Concatenate[HasRouter, P], T]:
    """A method that declares on ``self.router``, with the router method's signature and
    docstring: typed through the ParamSpec (editors complete its keywords, mypy checks them)
    and shown by ``inspect.signature`` and ``help()`` through ``functools.wraps``.
    """

    @functools.wraps(method)
    def declare(owner: HasRouter, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return method(owner.router, *args, **kwargs)

    return declare

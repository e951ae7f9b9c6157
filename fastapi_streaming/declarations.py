"""Declared topic operations, and how one becomes part of a topic registry.

A :class:`~fastapi_streaming.StreamingRouter` records what its decorators (and everything else
that declares topics: AsyncAPI documents, later data sources) ask for as
:class:`OperationDeclaration` values; :func:`declare` turns one into a topic operation of a
:class:`~fastapi_streaming.topics.TopicRegistry`, working out how to call the handler once.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, get_args, get_origin

from fastapi import params as fastapi_params
from pydantic import TypeAdapter

from .dependencies import plan_handler
from .security.access import scope_parameters
from .topics import (
    Derived,
    Mode,
    Operation,
    OperationReply,
    OverflowPolicy,
    Topic,
    TopicRegistry,
)

#: The default of ``payload=``: work the payload type out from the handler.
NOT_GIVEN: Any = object()


@dataclass(frozen=True)
class OperationDeclaration:
    """One mode of one topic, as declared (the arguments of ``add_operation``)."""

    mode: Mode
    address: str
    handler: Callable[..., Any] | None
    scopes: tuple[str, ...] = ()
    channel: str | None = None
    payload: Any = NOT_GIVEN
    name: str | None = None
    summary: str | None = None
    description: str | None = None
    overflow: OverflowPolicy | None = None
    max_queue: int | None = None
    tags: tuple[str, ...] = ()
    dependencies: tuple[fastapi_params.Depends, ...] = ()
    deprecated: bool | None = None
    include_in_schema: bool = True
    #: A ``Plan`` or plan chooser for clients of this operation (the innermost one wins).
    plan: Any = None
    #: A derived topic's computation (``router.derive``); its sources move with the prefix.
    derivation: Derived | None = None
    #: The reply's type, for a request/reply publish operation.
    reply: Any = None
    #: Where a request names the reply's topic (``$message.payload#/replyTo``).
    reply_address: str | None = None

    def __post_init__(self) -> None:
        if (self.reply is not None or self.reply_address is not None) and (
            self.mode is not Mode.PUBLISH
        ):
            raise ValueError("Only a publish topic can reply: clients send it requests.")
        if self.reply_address is not None and self.reply is None:
            raise ValueError("reply_address needs reply=<the reply's type>.")

    def under(
        self,
        *,
        prefix: str = "",
        tags: Sequence[str] = (),
        dependencies: Sequence[fastapi_params.Depends] = (),
        scopes: Sequence[str] = (),
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        plan: Any = None,
    ) -> OperationDeclaration:
        """This declaration as seen through a router: its prefix, tags, dependencies, scopes.

        The outer router's tags, dependencies and scopes come first; the operation is
        deprecated when it or any router it passes through says so, and left out of the
        schema when it or any of them says so (as with FastAPI's routers).
        """
        derivation = self.derivation
        if derivation is not None and prefix:
            derivation = derivation.under(prefix)
        return replace(
            self,
            derivation=derivation,
            address=join_address(prefix, self.address),
            tags=tuple(dict.fromkeys([*tags, *self.tags])),
            dependencies=(*dependencies, *self.dependencies),
            scopes=tuple(dict.fromkeys([*scopes, *self.scopes])),
            deprecated=self.deprecated or deprecated,
            include_in_schema=self.include_in_schema and include_in_schema,
            plan=self.plan if self.plan is not None else plan,
        )


def check_prefix(prefix: str) -> str:
    """A router prefix starts with ``/`` and does not end with one (as FastAPI's)."""
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ValueError(
            f"A prefix must start with '/' and not end with '/': {prefix!r} "
            "(for example prefix='/stocks')."
        )
    return prefix


def join_address(prefix: str, address: str) -> str:
    """``/stocks`` + ``/{symbol}`` is ``/stocks/{symbol}``; ``/stocks`` + ``""`` is ``/stocks``."""
    check_prefix(prefix)
    if prefix and address == "/":
        return prefix
    return prefix + address


def declare(registry: TopicRegistry, declaration: OperationDeclaration) -> Topic:
    """Add one declared mode to its topic in ``registry``, creating the topic on first use."""
    mode, address, handler = declaration.mode, declaration.address, declaration.handler
    channel, name = declaration.channel, declaration.name
    if declaration.derivation is not None:
        _check_cycle(registry, address, declaration.derivation)
    reply = (
        OperationReply(
            declaration.reply, TypeAdapter(declaration.reply), address=declaration.reply_address
        )
        if declaration.reply is not None
        else None
    )
    topic = registry.get(address)
    if topic is None:
        topic = Topic(address, channel=channel, name=name)
        registry.add(topic)
    elif channel is not None and not topic.channel_is_explicit:
        topic.set_channel(channel)
    elif channel is not None and channel != topic.channel:
        raise ValueError(
            f"Topic {address!r} is already mapped to channel {topic.channel!r}, "
            f"not {channel!r}; give the channel once, or the same one on both modes."
        )
    _check_scopes(topic, declaration.scopes)
    existing = topic.operation(mode)
    if existing is not None and existing.plan is None and handler is not None:
        # Declared without a handler (from an AsyncAPI document): the handler joins it.
        _attach_handler(topic, existing, declaration, handler)
        existing.reply = reply or existing.reply
        _set_queue(topic, declaration)
        registry.touch()
        return topic
    if existing is not None:
        raise ValueError(f"Topic {address!r} already has a {mode.value} operation.")
    plan = None
    if handler is not None:
        plan = plan_handler(
            handler,
            path_params=topic.parameters,
            allow_context=mode is Mode.PUBLISH,
            where=f"{mode.value} handler {getattr(handler, '__qualname__', handler)!r}",
            extra_dependencies=declaration.dependencies,
        )
    event_type = declaration.payload
    if event_type is NOT_GIVEN:
        has_event = plan is not None and plan.event_param is not None
        event_type = plan.event_type if plan is not None and has_event else topic.payload
    # A reply topic's handler returns the reply, not what the channel carries.
    returned = plan.return_type if plan is not None and reply is None else Any
    _learn_payload(topic, mode, event_type, returned)
    operation = Operation(
        mode=mode,
        plan=plan,
        payload_adapter=(
            topic.payload_adapter if event_type == topic.payload else TypeAdapter(event_type)
        ),
        scopes=declaration.scopes,
        summary=declaration.summary,
        description=declaration.description or (inspect.getdoc(handler) if handler else None),
        payload=event_type,
        tags=declaration.tags,
        deprecated=bool(declaration.deprecated),
        include_in_schema=declaration.include_in_schema,
        limit=declaration.plan,
        reply=reply,
    )
    if mode is Mode.SUBSCRIBE:
        topic.subscribe = operation
        topic.derivation = declaration.derivation
        _set_queue(topic, declaration)
    else:
        topic.publish = operation
    if name is not None:
        topic.name = name
    # A handler's docstring describes its operation; the topic (the AsyncAPI channel, shared
    # by both modes) is described only where it is declared (an imported document).
    registry.touch()
    return topic


def _check_scopes(topic: Topic, scopes: Sequence[str]) -> None:
    """A scope may name address parameters (``rooms:{room}:read``), and only those."""
    for scope in scopes:
        unknown = scope_parameters(scope) - set(topic.parameters)
        if unknown:
            raise ValueError(
                f"Scope {scope!r} of topic {topic.address!r} names {sorted(unknown)}, which are "
                f"not parameters of the address (it has: {', '.join(topic.parameters) or 'none'})."
            )


def _check_cycle(registry: TopicRegistry, address: str, derivation: Derived) -> None:
    """Refuse a derived topic that would, through other derived topics, read itself."""
    path = [address]

    def visit(sources: tuple[str, ...]) -> None:
        for source in sources:
            if source == address:
                chain = " -> ".join([*path, source])
                raise ValueError(
                    f"Derived topics form a cycle ({chain}): a derived topic cannot read, "
                    "directly or through others, what it produces. Derive one of them from "
                    "a topic outside the cycle."
                )
            found = registry.get(source)
            if found is not None and found.derivation is not None and source not in path:
                path.append(source)
                visit(found.derivation.sources)
                path.pop()

    visit(derivation.sources)


def _set_queue(topic: Topic, declaration: OperationDeclaration) -> None:
    if declaration.overflow is not None:
        topic.overflow = OverflowPolicy(declaration.overflow)
    if declaration.max_queue is not None:
        topic.max_queue = declaration.max_queue


def _attach_handler(
    topic: Topic,
    operation: Operation,
    declaration: OperationDeclaration,
    handler: Callable[..., Any],
) -> None:
    """Give a declared operation its handler; the declared payload and scopes still apply.

    A declared payload such as ``Annotated[Any, JsonSchemaPayload(...)]`` is narrowed to the
    handler's event type (``Annotated[Quote, JsonSchemaPayload(...)]``), so an event is checked
    against the document's schema and then converted to what the handler asks for.
    """
    plan = plan_handler(
        handler,
        path_params=topic.parameters,
        allow_context=operation.mode is Mode.PUBLISH,
        where=f"{operation.mode.value} handler {getattr(handler, '__qualname__', handler)!r}",
        extra_dependencies=declaration.dependencies,
    )
    payload = operation.payload
    wanted = plan.event_type if plan.event_param is not None else Any
    if wanted is not Any and get_origin(payload) is Annotated and get_args(payload)[0] is Any:
        payload = Annotated.__class_getitem__((wanted, *payload.__metadata__))
        operation.payload_adapter = TypeAdapter(payload)
    elif wanted is not Any and payload is Any:
        payload = wanted
        operation.payload_adapter = TypeAdapter(payload)
    operation.payload = payload
    operation.plan = plan
    operation.limit = declaration.plan if declaration.plan is not None else operation.limit
    operation.scopes = tuple(dict.fromkeys([*operation.scopes, *declaration.scopes]))
    operation.summary = declaration.summary or operation.summary
    operation.description = (
        declaration.description or operation.description or inspect.getdoc(handler)
    )
    operation.tags = tuple(dict.fromkeys([*operation.tags, *declaration.tags]))
    operation.deprecated = operation.deprecated or bool(declaration.deprecated)
    operation.include_in_schema = operation.include_in_schema and declaration.include_in_schema


def _learn_payload(topic: Topic, mode: Mode, event_type: Any, return_type: Any) -> None:
    """Work out the type of the events on the topic's channel from what the handlers declare.

    A subscribe handler's event is what the channel carries; so is what a publish handler
    returns. The first definite type wins; ``Any`` says nothing.
    """
    if topic.payload is not Any:
        return
    if mode is Mode.SUBSCRIBE:
        candidate = event_type
    else:
        candidate = _without_none(return_type)
        if candidate is Any:
            candidate = event_type
    if candidate is not Any:
        topic.payload = candidate
        topic.payload_adapter = TypeAdapter(candidate)


def _without_none(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if args and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        return rest[0] if len(rest) == 1 else Any
    return annotation

"""``StreamingRouter``: declaring topics in the module that owns them, as ``APIRouter`` does.

A big app declares its topics on routers, one per area (``stocks.py``, ``orders.py``), and
includes them into its :class:`~fastapi_streaming.StreamingAPI` (or into another router) with
``include_router``, which adds a prefix, tags, dependencies and scopes to everything it brings
in. The API keeps a router of its own, so ``@streaming.subscribe(...)`` still works.

Every declaration goes through :meth:`StreamingRouter.add_operation`: the decorators, an
AsyncAPI document's channels and any later source of topics.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import params as fastapi_params

from .declarations import NOT_GIVEN, OperationDeclaration, check_prefix, declare
from .processing.aggregates import Aggregate
from .processing.declaration import Derivation
from .processing.engine import EmitPolicy, LatePolicy
from .processing.timing import TimeSpec
from .processing.windows import WindowSpec
from .topics import Mode, OverflowPolicy, Topic, TopicRegistry

if TYPE_CHECKING:
    from .cdc.capture import Source
    from .cdc.declare import ChangesDeclaration
    from .cdc.producers import Producers

Handler = TypeVar("Handler", bound=Callable[..., Any])


class StreamingRouter:
    """A group of topics, included into a :class:`~fastapi_streaming.StreamingAPI` or router.

    Args:
        prefix: put in front of every address declared here (``/stocks``).
        tags: AsyncAPI tags of every operation declared here.
        dependencies: ``Depends(...)`` run before every handler declared here; their values
            are not passed to the handler (checks, auditing, counters). A subscribe handler
            runs once per event for all clients, so its dependencies cannot ask for a client's
            connection or principal: declare such checks on the publish operations.
        scopes: scopes every operation declared here requires, besides its own.
        deprecated: mark every operation declared here deprecated in the AsyncAPI document.
        include_in_schema: False leaves every operation declared here out of the AsyncAPI
            document (clients may still use them).
        plan: the ``Plan`` (or plan chooser) of clients of every operation declared here
            that names none (see the plans and limits guide).
        topics: the registry the declarations go into at once. The router of a streaming API
            has one; a router of your own has none and keeps its declarations until it is
            included (as with ``APIRouter``, what is declared after including is not seen).
    """

    def __init__(
        self,
        *,
        prefix: str = "",
        tags: Sequence[str] | None = None,
        dependencies: Sequence[fastapi_params.Depends] | None = None,
        scopes: Iterable[str] = (),
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        topics: TopicRegistry | None = None,
        plan: Any = None,
    ) -> None:
        self.prefix = check_prefix(prefix)
        self.tags = list(tags or ())
        self.dependencies = list(dependencies or ())
        self.scopes = list(scopes)
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self.topics = topics
        self.plan = plan
        #: Everything declared here, with this router's prefix, tags, dependencies and scopes.
        self.declarations: list[OperationDeclaration] = []
        #: The table topics declared here (``changes``), replayed where this router is included.
        self.change_declarations: list[ChangesDeclaration] = []
        self._producers: Producers | None = None

    @property
    def producers(self) -> Producers:
        """What feeds this router's topics from outside (database changes)."""
        if self._producers is None:
            from .cdc.producers import Producers

            self._producers = Producers()
        return self._producers

    def changes(
        self,
        address: str,
        *,
        source: Source,
        scopes: Iterable[str] = (),
        channel: str | None = None,
        payload: Any = NOT_GIVEN,
        name: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        exclude: Sequence[str] = (),
        mask: Sequence[str] = (),
    ) -> Callable[[Handler], Handler]:
        """Declare a subscribe topic that carries a database table's committed changes.

        ``source`` (such as ``PostgresChanges(dsn, table="public.orders")``) is captured once
        per deployment; the decorated function runs once per change with the ``Change`` and
        the address parameters (taken from the row's columns) and returns what clients get
        (``None`` drops it). ``exclude`` and ``mask`` name columns that never leave the
        process, or leave it masked. See the change data capture guide.
        """
        from .cdc.declare import ChangesDeclaration

        def decorator(handler: Handler) -> Handler:
            self._add_changes(
                ChangesDeclaration(
                    address=address,
                    handler=handler,
                    source=source,
                    scopes=tuple(scopes),
                    channel=channel,
                    payload=payload,
                    name=name,
                    summary=summary,
                    description=description,
                    exclude=tuple(exclude),
                    mask=tuple(mask),
                )
            )
            return handler

        return decorator

    def _add_changes(self, declaration: ChangesDeclaration) -> None:
        """Declare it now if this router registers topics, else when it is included."""
        if self.topics is not None:
            declaration.declare(self.add_operation, self.producers, self.topics.touch)
        self.change_declarations.append(declaration)

    def subscribe(
        self,
        address: str,
        *,
        scopes: Iterable[str] = (),
        channel: str | None = None,
        payload: Any = NOT_GIVEN,
        name: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        overflow: OverflowPolicy | str | None = None,
        max_queue: int | None = None,
        tags: Sequence[str] | None = None,
        dependencies: Sequence[fastapi_params.Depends] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        plan: Any = None,
    ) -> Callable[[Handler], Handler]:
        """Declare that clients may receive the events of ``address``.

        The decorated function runs once per event (not once per client) with the validated
        event and the address parameters; what it returns is sent to every subscribed client,
        and ``None`` drops the event.
        """

        def decorator(handler: Handler) -> Handler:
            self.add_operation(
                Mode.SUBSCRIBE,
                address,
                handler,
                scopes=scopes,
                channel=channel,
                payload=payload,
                name=name,
                summary=summary,
                description=description,
                overflow=overflow,
                max_queue=max_queue,
                tags=tags,
                dependencies=dependencies,
                deprecated=deprecated,
                include_in_schema=include_in_schema,
                plan=plan,
            )
            return handler

        return decorator

    def publish(
        self,
        address: str,
        *,
        scopes: Iterable[str] = (),
        channel: str | None = None,
        payload: Any = NOT_GIVEN,
        name: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        tags: Sequence[str] | None = None,
        dependencies: Sequence[fastapi_params.Depends] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        plan: Any = None,
        reply: Any = None,
        reply_address: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare that clients may send events into ``address``.

        The decorated function runs for each event a client sends, after validation, with its
        dependencies resolved; what it returns goes to the broker, and ``None`` drops the event.

        With ``reply=Model`` the topic is request/reply: the event goes to the broker as sent,
        and what the function returns is the reply, sent back to the client that sent the
        event (on the multiplexed WebSocket, correlated by the request's id) and, with
        ``reply_address="$message.payload#/replyTo"`` (or ``$message.header#/...``), also
        published to the topic whose address the request names there, if it names one.
        """

        def decorator(handler: Handler) -> Handler:
            self.add_operation(
                Mode.PUBLISH,
                address,
                handler,
                scopes=scopes,
                channel=channel,
                payload=payload,
                name=name,
                summary=summary,
                description=description,
                tags=tags,
                dependencies=dependencies,
                deprecated=deprecated,
                include_in_schema=include_in_schema,
                plan=plan,
                reply=reply,
                reply_address=reply_address,
            )
            return handler

        return decorator

    def derive(
        self,
        address: str,
        *,
        source: str | Sequence[str],
        window: WindowSpec | None = None,
        aggregate: Aggregate[Any, Any] | None = None,
        time: TimeSpec = None,
        key: str | None = None,
        allowed_lateness: float = 0.0,
        late: LatePolicy = "drop",
        emit: EmitPolicy = "final",
        min_interval: float = 0.0,
        idle: float | None = 2.0,
        partitions: int = 1,
        scopes: Iterable[str] = (),
        channel: str | None = None,
        name: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        overflow: OverflowPolicy | str | None = None,
        max_queue: int | None = None,
        tags: Sequence[str] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
    ) -> Callable[[Handler], Handler]:
        """Declare a derived topic: computed from ``source`` once per deployment, then
        subscribed to like any topic.

        Without ``window`` the handler is a filter/map: it gets each event of the source(s)
        (and their common address parameters by name) and returns the derived event, or
        ``None`` to drop it. With ``window`` it gets each window's
        :class:`~fastapi_streaming.processing.Window` (holding the ``aggregate``, a count by
        default) and the derived topic's parameters, and returns the derived event.

        Args:
            source: the address template(s) of the topic(s) to read (of this router, or of
                the API once included); several sources are merged (fan-in).
            window: ``Tumbling``, ``Hopping``, ``Session`` or ``CountWindow``, per key.
            aggregate: what a window accumulates (``Count()``, ``Sum("price")``, ``Reduce``).
            time: the event-time field name or function; None for processing time.
            key: a payload field to key by, besides the derived address's parameters.
            allowed_lateness: seconds the watermark stays behind the latest event time.
            late: ``"drop"`` (counted) or ``"update"`` (emit the window again) for late events.
            emit: ``"final"`` once per window when it closes, or ``"updates"`` on each change.
            min_interval: with ``emit="updates"``, seconds between two updates of a window.
            idle: after this many seconds without events, event time moves on with the clock,
                so the last windows close; None waits for the next event.
            partitions: split the work by key into this many partitions, which the
                processes of the deployment share through a Redis Streams consumer group
                (``redis-stream://``); 1 (the default) has one process compute it all.
        """
        sources = (source,) if isinstance(source, str) else tuple(source)

        def decorator(handler: Handler) -> Handler:
            derivation = Derivation(
                sources=sources,
                handler=handler,
                window=window,
                aggregate=aggregate,
                time=time,
                key=key,
                allowed_lateness=allowed_lateness,
                late=late,
                emit=emit,
                min_interval=min_interval,
                idle=idle,
                partitions=partitions,
            )
            checked = derivation.check(address)
            self.add_operation(
                Mode.SUBSCRIBE,
                address,
                None,
                scopes=scopes,
                channel=channel,
                payload=checked.shape.returns,
                name=name,
                summary=summary,
                description=description or inspect.getdoc(handler),
                overflow=overflow,
                max_queue=max_queue,
                tags=tags,
                deprecated=deprecated,
                include_in_schema=include_in_schema,
                derivation=checked,
            )
            return handler

        return decorator

    def add_operation(
        self,
        mode: Mode,
        address: str,
        handler: Callable[..., Any] | None,
        *,
        scopes: Iterable[str] = (),
        channel: str | None = None,
        payload: Any = NOT_GIVEN,
        name: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        overflow: OverflowPolicy | str | None = None,
        max_queue: int | None = None,
        tags: Sequence[str] | None = None,
        dependencies: Sequence[fastapi_params.Depends] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        plan: Any = None,
        derivation: Derivation | None = None,
        reply: Any = None,
        reply_address: str | None = None,
    ) -> Topic | None:
        """Add one mode to a topic: the one entry point of every declaration.

        ``handler`` may be None for a topic declared without code (from an AsyncAPI document);
        a handler declared later joins it. Returns the topic when this router has a registry
        (the router of a streaming API), else None: the declaration waits to be included.
        """
        declaration = OperationDeclaration(
            mode=Mode(mode),
            address=address,
            handler=handler,
            scopes=tuple(scopes),
            channel=channel,
            payload=payload,
            name=name,
            summary=summary,
            description=description,
            overflow=OverflowPolicy(overflow) if overflow is not None else None,
            max_queue=max_queue,
            tags=tuple(tags or ()),
            dependencies=tuple(dependencies or ()),
            deprecated=deprecated,
            include_in_schema=include_in_schema,
            plan=plan,
            derivation=derivation,
            reply=reply,
            reply_address=reply_address,
        )
        return self._add(declaration)

    def include_router(
        self,
        router: StreamingRouter,
        *,
        prefix: str = "",
        tags: Sequence[str] | None = None,
        dependencies: Sequence[fastapi_params.Depends] | None = None,
        scopes: Iterable[str] = (),
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        plan: Any = None,
    ) -> None:
        """Add every operation of ``router`` here, under ``prefix``, with these ``tags``,
        ``dependencies`` and ``scopes`` added (and this router's own).
        """
        if router is self:
            raise ValueError("A router cannot include itself.")
        check_prefix(prefix)
        for change in router.change_declarations:
            if router.topics is None:  # else its topics and producers are declared already
                self._add_changes(
                    change.under(prefix=prefix + router.prefix, scopes=(*router.scopes, *scopes))
                )
        for declaration in router.declarations:
            self._add(
                declaration.under(
                    prefix=prefix,
                    tags=tags or (),
                    dependencies=dependencies or (),
                    scopes=tuple(scopes),
                    deprecated=deprecated,
                    include_in_schema=include_in_schema,
                    plan=plan,
                )
            )

    def _add(self, declaration: OperationDeclaration) -> Topic | None:
        """Apply this router's own prefix, tags, dependencies and scopes, then record it."""
        declaration = declaration.under(
            prefix=self.prefix,
            tags=self.tags,
            dependencies=self.dependencies,
            scopes=self.scopes,
            deprecated=self.deprecated,
            include_in_schema=self.include_in_schema,
            plan=self.plan,
        )
        topic = declare(self.topics, declaration) if self.topics is not None else None
        self.declarations.append(declaration)
        return topic

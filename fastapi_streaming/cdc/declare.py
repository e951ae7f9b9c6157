"""Declaring a table as a topic: what ``@streaming.changes(...)`` does.

The declaration needs only two things of whoever declares: a way to add a subscribe operation
(``add_operation``, as the API and a router have) and a registry of producers. So the same
function serves the API and a router, and this package never imports either.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, get_args, get_origin

from pydantic import TypeAdapter

from ..declarations import NOT_GIVEN
from ..dependencies import plan_handler
from ..topics import Mode, Topic
from .capture import Source, TableCapture
from .change import Change
from .clientsnapshot import TableSnapshots
from .producers import Producers
from .table import TableInfo

#: ``add_operation(mode, address, handler, **options) -> Topic``, as on the API and a router.
AddOperation = Callable[..., Topic | None]


@dataclass(frozen=True)
class ChangesDeclaration:
    """A table topic as declared (the arguments of ``changes``), kept by a router that has no
    topic registry yet and replayed, under its prefix and scopes, where it is included."""

    address: str
    handler: Callable[..., Any] | None
    source: Source
    scopes: tuple[str, ...] = ()
    channel: str | None = None
    payload: Any = NOT_GIVEN
    name: str | None = None
    summary: str | None = None
    description: str | None = None
    exclude: tuple[str, ...] = ()
    mask: tuple[str, ...] = ()

    def under(self, *, prefix: str = "", scopes: Sequence[str] = ()) -> ChangesDeclaration:
        address = prefix + self.address if prefix else self.address
        return replace(self, address=address, scopes=(*self.scopes, *scopes))

    def declare(
        self, add_operation: AddOperation, producers: Producers, touch: Callable[[], None]
    ) -> Topic:
        return declare_changes(
            add_operation,
            producers,
            touch,
            self.address,
            self.handler,
            source=self.source,
            scopes=self.scopes,
            channel=self.channel,
            name=self.name,
            summary=self.summary,
            description=self.description,
            exclude=self.exclude,
            mask=self.mask,
            payload=self.payload,
        )


def declare_changes(
    add_operation: AddOperation,
    producers: Producers,
    touch: Callable[[], None],
    address: str,
    handler: Callable[..., Any] | None,
    *,
    source: Source,
    scopes: Iterable[str] = (),
    channel: str | None = None,
    name: str | None = None,
    summary: str | None = None,
    description: str | None = None,
    exclude: Sequence[str] = (),
    mask: Sequence[str] = (),
    payload: Any = NOT_GIVEN,
) -> Topic:
    """Make ``address`` a subscribe topic fed by ``source``'s changes.

    ``handler`` (optional) runs once per change, in the capturing process, before the change
    goes to the broker: it receives the ``Change`` and the address parameters, and returns
    what clients get (``None`` drops the change). ``exclude`` and ``mask`` name columns left
    out or masked before the handler sees the row. ``touch`` tells the topic registry the
    topic changed (when the table's reflected columns become its payload schema).
    """
    parameters = Topic(address).parameters
    plan = None
    event_type: Any = Change[dict[str, Any]]
    if handler is not None:
        plan = plan_handler(
            handler,
            path_params=parameters,
            allow_context=False,
            where=f"change handler {getattr(handler, '__qualname__', handler)!r}",
        )
        if plan.event_param is not None and plan.event_type is not Any:
            event_type = plan.event_type
    given = payload is not NOT_GIVEN
    if not given:
        payload = _returned(plan.return_type if plan else Any) or event_type
        given = _has_row_model(payload) or not _is_change(payload)
    found = add_operation(
        Mode.SUBSCRIBE,
        address,
        None,
        scopes=scopes,
        channel=channel,
        payload=payload,
        name=name,
        summary=summary,
        description=description or (inspect.getdoc(handler) if handler else None),
    )
    assert found is not None, "declared where topics are registered"
    topic = found

    def learn_columns(table: TableInfo) -> None:
        if given:
            return
        # The reflected columns describe the topic; events are still checked as plain
        # changes, so a column added or dropped while capture runs does not stop delivery.
        row: Any = table.row_model(exclude=exclude, mask=mask)
        reflected: Any = Change[row]
        topic.payload = reflected
        if topic.subscribe is not None:
            topic.subscribe.payload = reflected
        touch()

    capture = TableCapture(
        source,
        topic,
        change_adapter=TypeAdapter(event_type),
        plan=plan,
        exclude=exclude,
        mask=mask,
        on_table=learn_columns,
    )
    producers.add(source.name, capture)
    open_snapshot = getattr(source, "open_snapshot", None)
    if open_snapshot is not None:
        topic.snapshots = TableSnapshots(capture, open_snapshot)
    return topic


def _returned(annotation: Any) -> Any:
    """The return annotation without ``None``, or None when it says nothing."""
    args = get_args(annotation)
    if args and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        annotation = rest[0] if len(rest) == 1 else Any
    return None if annotation in (Any, None, type(None), inspect.Parameter.empty) else annotation


def _is_change(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Change)


def _has_row_model(annotation: Any) -> bool:
    """``Change[OrderRow]`` names its rows; ``Change`` and ``Change[dict]`` do not."""
    if not _is_change(annotation):
        return False
    args = annotation.__pydantic_generic_metadata__["args"]
    if not args:
        return False
    row = args[0]
    return row is not Any and row is not dict and get_origin(row) is not dict

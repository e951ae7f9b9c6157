"""A small resolver for topic handlers' parameters, in FastAPI's style.

A topic handler is an ordinary function. Its parameters are filled, by name and annotation, with:

- the address parameters (``symbol`` of ``/stocks/{symbol}``), converted by their convertor;
- ``Depends(...)`` and ``Security(...)`` dependencies, resolved recursively, cached per call,
  generators cleaned up when the call is over, replaced by the app's ``dependency_overrides``
  (as in FastAPI); a ``SecurityScopes`` parameter gets the scopes of the ``Security(...)``
  declarations that lead to it;
- objects of the connection context: the ``Request``/``WebSocket`` and the authenticated
  ``Principal`` of the client (publish handlers only: a subscribe handler runs once per event for
  every client at once, so it has no single client to speak of);
- the event payload: the one remaining parameter (named ``event`` by convention), validated
  against its annotation before the handler runs.

FastAPI's own resolver is internal to FastAPI and bound to requests, so this module keeps the
same rules in a form that works for broker events and socket messages too.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, get_args, get_origin, get_type_hints

import anyio.to_thread
from fastapi import params as fastapi_params
from fastapi.security import SecurityScopes
from starlette.requests import HTTPConnection, Request


class HandlerDefinitionError(TypeError):
    """A handler has a parameter that fastapi-streaming cannot provide."""


#: Annotations that name an object of the connection context rather than the payload.
class ConnectionContext:
    """Base of the objects a connection carries that handlers ask for by annotation.

    The security layer's ``Principal`` is one; this module sits below security, so it knows
    them by this base rather than by name.
    """


CONTEXT_TYPES: list[type] = [HTTPConnection, ConnectionContext]

#: ``app.dependency_overrides``: a dependency's function -> the function to call instead.
Overrides = Mapping[Callable[..., Any], Callable[..., Any]]


@dataclass(frozen=True)
class HandlerPlan:
    """What a function needs, worked out once when it is registered, not on every call."""

    call: Callable[..., Any]
    path_params: tuple[str, ...] = ()
    context_params: tuple[tuple[str, type], ...] = ()
    dependencies: tuple[tuple[str, HandlerPlan, bool], ...] = ()
    event_param: str | None = None
    event_type: Any = Any
    return_type: Any = Any
    kind: str = field(default="function")
    #: Dependencies that run before the call without giving it a value (a router's
    #: ``dependencies=[Depends(...)]``), as ``(plan, use_cache)``.
    side_dependencies: tuple[tuple[HandlerPlan, bool], ...] = ()
    #: The parameter that gets a ``SecurityScopes``, and the scopes it gets.
    security_scopes_param: str | None = None
    security_scopes: tuple[str, ...] = ()
    #: How this plan was made, so an override of it is planned the same way.
    available_params: tuple[str, ...] = ()
    allow_context: bool = True
    #: Plans of the overrides met so far, by override function (planned on first use).
    overridden: dict[Callable[..., Any], HandlerPlan] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def needs_cleanup(self) -> bool:
        """True when a generator dependency must be closed after the call."""
        return (
            self.kind in ("asyncgen", "generator")
            or any(sub.needs_cleanup for _, sub, _ in self.dependencies)
            or any(sub.needs_cleanup for sub, _ in self.side_dependencies)
        )


async def call_handler(
    plan: HandlerPlan,
    *,
    event: Any,
    params: Mapping[str, Any],
    context: Sequence[object],
    overrides: Overrides | None = None,
) -> Any:
    """Run a handler with its dependencies; clean generator dependencies up afterwards."""
    if not plan.needs_cleanup and not overrides:
        return await solve(plan, event=event, params=params, context=context, stack=None)
    async with AsyncExitStack() as stack:
        return await solve(
            plan, event=event, params=params, context=context, stack=stack, overrides=overrides
        )


def _kind(call: Callable[..., Any]) -> str:
    target = call if inspect.isroutine(call) or inspect.isclass(call) else type(call).__call__
    if inspect.isasyncgenfunction(target):
        return "asyncgen"
    if inspect.isgeneratorfunction(target):
        return "generator"
    if inspect.iscoroutinefunction(target):
        return "coroutine"
    return "function"


def _type_hints(target: Any) -> dict[str, Any]:
    """The evaluated annotations of ``target``; those that cannot be evaluated stay strings.

    ``typing.get_type_hints`` gives up on all of them when one name cannot be found (a class
    imported under ``TYPE_CHECKING``, say), so fall back to evaluating them one by one.
    """
    try:
        return get_type_hints(target, include_extras=True)
    except (NameError, TypeError):
        pass
    namespace = getattr(target, "__globals__", {})
    hints: dict[str, Any] = {}
    for name, annotation in getattr(target, "__annotations__", {}).items():
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)  # as typing.get_type_hints does
            except Exception:
                pass
        hints[name] = annotation
    return hints


def _depends_of(annotation: Any, default: Any) -> tuple[Any, fastapi_params.Depends | None]:
    """Split ``Annotated[T, Depends(f)]`` or ``x: T = Depends(f)`` into ``(T, Depends)``."""
    if get_origin(annotation) is Annotated:
        inner, *metadata = get_args(annotation)
        for item in metadata:
            if isinstance(item, fastapi_params.Depends):
                return inner, item
        annotation = inner
    if isinstance(default, fastapi_params.Depends):
        return annotation, default
    return annotation, None


def _context_type(annotation: Any) -> type | None:
    if inspect.isclass(annotation):
        for base in CONTEXT_TYPES:
            if issubclass(annotation, base):
                return annotation
    return None


def plan_handler(
    call: Callable[..., Any],
    *,
    path_params: Sequence[str],
    allow_event: bool = True,
    allow_context: bool = True,
    where: str = "",
    extra_dependencies: Sequence[fastapi_params.Depends] = (),
    security_scopes: Sequence[str] = (),
) -> HandlerPlan:
    """Work out how to call ``call``; raise :class:`HandlerDefinitionError` if it cannot be.

    ``extra_dependencies`` run before every call, and their values are not passed to it (as the
    ``dependencies=`` of a FastAPI route or router). ``security_scopes`` are the scopes of the
    ``Security(...)`` declarations above ``call``.
    """
    where = where or getattr(call, "__qualname__", repr(call))
    signature = inspect.signature(call)
    target = call if inspect.isroutine(call) or inspect.isclass(call) else type(call).__call__
    hints = _type_hints(target)
    path: list[str] = []
    context: list[tuple[str, type]] = []
    dependencies: list[tuple[str, HandlerPlan, bool]] = []
    event_param: str | None = None
    event_type: Any = Any
    scopes_param: str | None = None

    for name, parameter in signature.parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = hints.get(name, parameter.annotation)
        if annotation is inspect.Parameter.empty:
            annotation = Any
        annotation, depends = _depends_of(annotation, parameter.default)
        if depends is not None:
            dependency = depends.dependency or annotation
            sub = plan_handler(
                dependency,
                path_params=path_params,
                allow_event=False,
                allow_context=allow_context,
                where=where,
                security_scopes=_scopes_below(security_scopes, depends),
            )
            dependencies.append((name, sub, depends.use_cache))
        elif inspect.isclass(annotation) and issubclass(annotation, SecurityScopes):
            scopes_param = name
        elif name in path_params:
            path.append(name)
        elif (context_type := _context_type(annotation)) is not None:
            if not allow_context:
                raise HandlerDefinitionError(
                    f"{where}: parameter {name!r} asks for the client's {context_type.__name__}, "
                    "but a subscribe handler runs once per event for all clients together. "
                    "Check per-client access with scopes, or move this to a publish handler."
                )
            context.append((name, context_type))
        elif parameter.default is not inspect.Parameter.empty:
            continue  # Python fills it in
        elif allow_event and event_param is None:
            event_param, event_type = name, annotation
        else:
            raise HandlerDefinitionError(
                f"{where}: cannot provide parameter {name!r}. A handler receives the event "
                f"(one parameter), the address parameters {list(path_params)}, Depends(...) "
                "dependencies, and the connection or principal by annotation."
            )

    side: list[tuple[HandlerPlan, bool]] = []
    for depends in extra_dependencies:
        if depends.dependency is None:
            raise HandlerDefinitionError(
                f"{where}: Depends() in dependencies=[...] needs a callable."
            )
        sub = plan_handler(
            depends.dependency,
            path_params=path_params,
            allow_event=False,
            allow_context=allow_context,
            where=where,
            security_scopes=_scopes_below(security_scopes, depends),
        )
        side.append((sub, depends.use_cache))

    return_type = hints.get("return", signature.return_annotation)
    if return_type is inspect.Parameter.empty:
        return_type = Any
    return HandlerPlan(
        call=call,
        path_params=tuple(path),
        context_params=tuple(context),
        dependencies=tuple(dependencies),
        event_param=event_param,
        event_type=event_type,
        return_type=return_type,
        kind=_kind(call),
        side_dependencies=tuple(side),
        security_scopes_param=scopes_param,
        security_scopes=tuple(security_scopes),
        available_params=tuple(path_params),
        allow_context=allow_context,
    )


def _scopes_below(scopes: Sequence[str], depends: fastapi_params.Depends) -> tuple[str, ...]:
    """The ``SecurityScopes`` of a dependency: those above it, plus its own ``Security``'s."""
    if isinstance(depends, fastapi_params.Security):
        return tuple(dict.fromkeys([*scopes, *(depends.scopes or ())]))
    return tuple(scopes)


def _overridden(plan: HandlerPlan, overrides: Overrides | None) -> HandlerPlan:
    """The plan to run for a dependency: its override's, when the app overrides it."""
    if not overrides:
        return plan
    replacement = overrides.get(plan.call)
    if replacement is None:
        return plan
    found = plan.overridden.get(replacement)
    if found is None:
        if len(plan.overridden) >= 64:  # tests that override with a new lambda each time
            plan.overridden.clear()
        found = plan.overridden[replacement] = plan_handler(
            replacement,
            path_params=plan.available_params,
            allow_event=False,
            allow_context=plan.allow_context,
            where=f"override of {getattr(plan.call, '__qualname__', plan.call)!r}",
            security_scopes=plan.security_scopes,
        )
    return found


async def solve(
    plan: HandlerPlan,
    *,
    event: Any,
    params: Mapping[str, Any],
    context: Sequence[object],
    stack: AsyncExitStack | None,
    cache: dict[tuple[Callable[..., Any], tuple[str, ...]], Any] | None = None,
    overrides: Overrides | None = None,
) -> Any:
    """Call ``plan.call`` with every parameter filled; return what it returns (or yields)."""
    cache = {} if cache is None else cache

    async def dependency(declared: HandlerPlan, use_cache: bool) -> Any:
        sub = _overridden(declared, overrides)
        key = (sub.call, sub.security_scopes)
        if use_cache and key in cache:
            return cache[key]
        value = await solve(
            sub,
            event=None,
            params=params,
            context=context,
            stack=stack,
            cache=cache,
            overrides=overrides,
        )
        if use_cache:
            cache[key] = value
        return value

    for declared, use_cache in plan.side_dependencies:
        await dependency(declared, use_cache)
    kwargs: dict[str, Any] = {name: params[name] for name in plan.path_params}
    for name, wanted in plan.context_params:
        kwargs[name] = _find_context(wanted, context, name)
    if plan.security_scopes_param is not None:
        kwargs[plan.security_scopes_param] = SecurityScopes(list(plan.security_scopes))
    for name, declared, use_cache in plan.dependencies:
        kwargs[name] = await dependency(declared, use_cache)
    if plan.event_param is not None:
        kwargs[plan.event_param] = event
    return await _call(plan, kwargs, stack)


async def _call(plan: HandlerPlan, kwargs: dict[str, Any], stack: AsyncExitStack | None) -> Any:
    if plan.kind == "coroutine":
        return await plan.call(**kwargs)
    if plan.kind == "function":
        return await anyio.to_thread.run_sync(partial(plan.call, **kwargs))
    if stack is None:
        raise RuntimeError("generator dependencies need an exit stack: use call_handler()")
    if plan.kind == "asyncgen":
        return await stack.enter_async_context(asynccontextmanager(plan.call)(**kwargs))
    manager = contextmanager(plan.call)(**kwargs)
    return await anyio.to_thread.run_sync(stack.enter_context, manager)


def _find_context(wanted: type, context: Sequence[object], name: str) -> object:
    for item in context:
        if isinstance(item, wanted):
            return item
    if issubclass(wanted, Request):
        # FastAPI's security classes (HTTPBearer, OAuth2PasswordBearer...) ask for the Request
        # to read its headers; on a socket, the WebSocket has the same headers.
        for item in context:
            if isinstance(item, HTTPConnection):
                return item
    raise HandlerDefinitionError(
        f"parameter {name!r} asks for a {wanted.__name__}, which this connection does not have"
    )

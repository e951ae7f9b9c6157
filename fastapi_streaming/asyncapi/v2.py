"""Write the description as an AsyncAPI 2.6 document.

In 2.x operations are seen from the client: ``subscribe`` holds the messages the application
sends (a subscribe-mode topic) and ``publish`` those it receives (a publish-mode topic).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..topics import Mode
from .description import ApiSpec, Channel, Message, OperationSpec, Parameter
from .models import v2
from .models.common import ExternalDocs, MessageExample, Reference, Tag
from .names import DEPRECATED_EXTENSION, EXTENSION, SCOPES_EXTENSION
from .security import SCOPED_SCHEME_TYPES


def generate(spec: ApiSpec) -> v2.AsyncAPI:
    info = spec.info
    return v2.AsyncAPI(
        asyncapi="2.6.0",
        info=v2.Info(
            title=info.title,
            version=info.version,
            description=info.description,
            termsOfService=info.terms_of_service,
            contact=info.contact,  # type: ignore[arg-type]
            license=info.license,  # type: ignore[arg-type]
        ),
        tags=info.tags,  # type: ignore[arg-type]
        externalDocs=ExternalDocs(**info.external_docs) if info.external_docs else None,
        defaultContentType=spec.content_type,
        servers={
            server.key: v2.Server(
                url=f"{server.protocol}://{server.host}{server.pathname}",
                protocol=server.protocol,
                description=f"{server.title}. {server.description}",
                security=[{name: list(scopes)} for name, scopes in spec.server_security.items()]
                if spec.server_security
                else None,
            )
            for server in spec.servers
        },
        channels={
            channel.address: _channel(channel, spec) for channel in _one_per_address(spec.channels)
        },
        components=v2.Components(
            schemas=spec.schemas or None,
            securitySchemes={
                name: scheme_for_v2(scheme) for name, scheme in spec.security_schemes.items()
            }
            or None,
        ),
    )


def _one_per_address(channels: list[Channel]) -> list[Channel]:
    """2.x has one channel per address with one operation per mode: merge the others in.

    Several 3.x channels or operations on one address (one socket, messages told apart by
    content) become one channel whose operations take any of their messages.
    """
    merged: dict[str, Channel] = {}
    for channel in channels:
        first = merged.get(channel.address)
        if first is None:
            merged[channel.address] = replace(
                channel, messages=dict(channel.messages), operations=[]
            )
            first = merged[channel.address]
        for key, message in channel.messages.items():
            first.messages.setdefault(key, message)
        for operation in channel.operations:
            same = next((op for op in first.operations if op.mode is operation.mode), None)
            if same is None:
                first.operations.append(replace(operation, reply=None))
                continue
            same.messages = list(dict.fromkeys([*same.messages, *operation.messages]))
            same.scopes = tuple(dict.fromkeys([*same.scopes, *operation.scopes]))
            if same.security is not None or operation.security is not None:
                same.security = tuple(
                    dict.fromkeys([*(same.security or ()), *(operation.security or ())])
                )
    return list(merged.values())


def scheme_for_v2(scheme: dict[str, Any]) -> dict[str, Any]:
    """3.x calls an OAuth2 flow's scopes ``availableScopes``; 2.x calls them ``scopes``."""
    flows = scheme.get("flows")
    if not isinstance(flows, dict):
        return scheme
    renamed = {}
    for name, flow in flows.items():
        flow = dict(flow)
        if "availableScopes" in flow:
            flow["scopes"] = flow.pop("availableScopes")
        renamed[name] = flow
    return {**scheme, "flows": renamed}


def _channel(channel: Channel, spec: ApiSpec) -> v2.ChannelItem:
    operations: dict[str, v2.Operation] = {}
    for operation in channel.operations:
        messages: list[v2.Message | Reference] = [
            _message(operation.key, channel.messages[key]) for key in operation.messages
        ]
        model = v2.Operation(
            operationId=operation.key,
            summary=operation.summary,
            description=operation.description,
            tags=[Tag(name=tag) for tag in operation.tags] or None,
            security=_operation_security(operation, spec),
            bindings={
                "http": {
                    "type": "request",
                    "method": "GET" if operation.mode is Mode.SUBSCRIBE else "POST",
                    "bindingVersion": "0.1.0",
                }
            },
            message=messages[0] if len(messages) == 1 else v2.OneOfMessages(oneOf=messages),
        )
        if operation.scopes:
            setattr(model, SCOPES_EXTENSION, list(operation.scopes))
        if operation.deprecated:
            setattr(model, DEPRECATED_EXTENSION, True)
        operations[operation.mode.value] = model
    bindings: dict[str, Any] = {"ws": {"method": "GET", "bindingVersion": "0.1.0"}}
    model_channel = v2.ChannelItem(
        description=channel.description,
        servers=list(channel.servers),
        parameters={
            parameter.name: v2.Parameter.model_validate(
                # 2.x parameters say ``enum``, ``default`` and ``examples`` in their schema.
                {"description": parameter.description, "schema": parameter_schema(parameter)}
            )
            for parameter in channel.parameters
        }
        or None,
        bindings=bindings,
        **operations,
    )
    setattr(model_channel, "x-channel-id", channel.key)
    if channel.extension:
        setattr(model_channel, EXTENSION, channel.extension)
    return model_channel


def parameter_schema(parameter: Parameter) -> dict[str, Any]:
    return {**parameter.schema, **parameter.fields}


def _message(operation_key: str, message: Message) -> v2.Message:
    return v2.Message(
        # Unique per operation, as 2.x requires even of one message used twice.
        messageId=f"{operation_key}.{message.key}",
        name=message.name,
        title=message.title,
        summary=message.summary,
        description=message.description,
        contentType=message.content_type,
        payload=message.payload,
        **{
            "examples": [MessageExample(payload=example) for example in message.examples] or None,
            **message.fields,
        },
    )


def _operation_security(
    operation: OperationSpec, spec: ApiSpec
) -> list[dict[str, list[str]]] | None:
    """As in 3.x: the operation's own schemes, else every scheme when it needs credentials."""
    if operation.security is not None:
        return _security(operation.scopes, spec, operation.security) or None
    if operation.scopes or (spec.require_auth and not spec.server_security):
        return _security(operation.scopes, spec)
    return None


def _security(
    scopes: tuple[str, ...], spec: ApiSpec, names: tuple[str, ...] | None = None
) -> list[dict[str, list[str]]] | None:
    """2.x requirements name a scheme; only scope-aware scheme types may list scopes."""
    requirements = [
        {name: list(scopes) if scheme.get("type") in SCOPED_SCHEME_TYPES else []}
        for name, scheme in spec.security_schemes.items()
        if names is None or name in names
    ]
    return requirements or None

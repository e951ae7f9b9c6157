"""Write the description as an AsyncAPI 2.6 document.

In 2.x operations are seen from the client: ``subscribe`` holds the messages the application
sends (a subscribe-mode topic) and ``publish`` those it receives (a publish-mode topic).
"""

from __future__ import annotations

from typing import Any

from ..topics import Mode
from .models import v2
from .models.common import ExternalDocs, MessageExample, Tag
from .security import SCOPED_SCHEME_TYPES
from .spec import DEPRECATED_EXTENSION, EXTENSION, SCOPES_EXTENSION, ApiSpec, Channel


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
            )
            for server in spec.servers
        },
        channels={channel.address: _channel(channel, spec) for channel in spec.channels},
        components=v2.Components(
            schemas=spec.schemas or None,
            securitySchemes={
                name: scheme_for_v2(scheme) for name, scheme in spec.security_schemes.items()
            }
            or None,
        ),
    )


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


def scheme_from_v2(scheme: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`scheme_for_v2`."""
    flows = scheme.get("flows")
    if not isinstance(flows, dict):
        return scheme
    renamed = {}
    for name, flow in flows.items():
        flow = dict(flow) if isinstance(flow, dict) else flow
        if isinstance(flow, dict) and "scopes" in flow:
            flow["availableScopes"] = flow.pop("scopes")
        renamed[name] = flow
    return {**scheme, "flows": renamed}


def _channel(channel: Channel, spec: ApiSpec) -> v2.ChannelItem:
    operations: dict[str, v2.Operation] = {}
    for operation in channel.operations:
        message = channel.messages[operation.message]
        model = v2.Operation(
            operationId=operation.key,
            summary=operation.summary,
            description=operation.description,
            tags=[Tag(name=tag) for tag in operation.tags] or None,
            security=(
                _security(operation.scopes, spec) if operation.scopes or spec.require_auth else None
            ),
            bindings={
                "http": {
                    "type": "request",
                    "method": "GET" if operation.mode is Mode.SUBSCRIBE else "POST",
                    "bindingVersion": "0.1.0",
                }
            },
            message=v2.Message(
                # Unique per operation, as 2.x requires even of one message used twice.
                messageId=f"{operation.key}.{message.key}",
                name=message.name,
                title=message.title,
                summary=message.summary,
                description=message.description,
                contentType=message.content_type,
                payload=message.payload,
                examples=[MessageExample(payload=example) for example in message.examples] or None,
            ),
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
                {"description": parameter.description, "schema": parameter.schema}
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


def _security(scopes: tuple[str, ...], spec: ApiSpec) -> list[dict[str, list[str]]] | None:
    """2.x requirements name a scheme; only scope-aware scheme types may list scopes."""
    requirements = [
        {name: list(scopes) if scheme.get("type") in SCOPED_SCHEME_TYPES else []}
        for name, scheme in spec.security_schemes.items()
    ]
    return requirements or None

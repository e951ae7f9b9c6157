"""Write the description as an AsyncAPI 3.0 or 3.1 document.

In 3.x a channel says where messages flow and an operation says what the application does:
a subscribe-mode topic is an operation the application **sends**, a publish-mode topic one it
**receives**.
"""

from __future__ import annotations

from typing import Any

from ..topics import Mode
from .description import ApiSpec, Channel, OperationSpec
from .models import v3
from .models.common import ExternalDocs, MessageExample, Reference, Tag
from .names import DEPRECATED_EXTENSION, EXTENSION, SCOPES_EXTENSION
from .security import SCOPED_SCHEME_TYPES


def generate(spec: ApiSpec, version: str = "3.0.0") -> v3.AsyncAPI:
    info = spec.info
    return v3.AsyncAPI(
        asyncapi=version,  # type: ignore[arg-type]
        info=v3.Info(
            title=info.title,
            version=info.version,
            description=info.description,
            termsOfService=info.terms_of_service,
            contact=info.contact,  # type: ignore[arg-type]
            license=info.license,  # type: ignore[arg-type]
            tags=info.tags,  # type: ignore[arg-type]
            externalDocs=ExternalDocs(**info.external_docs) if info.external_docs else None,
        ),
        defaultContentType=spec.content_type,
        servers={
            server.key: v3.Server(
                host=server.host,
                protocol=server.protocol,
                pathname=server.pathname,
                title=server.title,
                description=server.description,
                security=_server_security(spec),
            )
            for server in spec.servers
        },
        channels={channel.key: _channel(channel, spec) for channel in spec.channels},
        operations={
            operation.key: operation_model
            for channel in spec.channels
            for operation, operation_model in _operations(channel, spec)
        },
        components=v3.Components(
            schemas=spec.schemas or None,
            securitySchemes=spec.security_schemes or None,
        ),
    )


def _channel(channel: Channel, spec: ApiSpec) -> v3.Channel:
    bindings: dict[str, Any] = {"ws": {"method": "GET", "bindingVersion": "0.1.0"}}
    if spec.security_schemes:
        bindings["ws"]["query"] = {
            "type": "object",
            "properties": {
                "access_token": {
                    "type": "string",
                    "description": "An access token, for clients that cannot set headers.",
                }
            },
        }
    model = v3.Channel(
        address=channel.address,
        description=channel.description,
        servers=[Reference.to(f"#/servers/{name}") for name in channel.servers],
        parameters={
            parameter.name: v3.Parameter.model_validate(
                {
                    **parameter.fields,
                    **(
                        {"description": parameter.description, "x-schema": parameter.schema}
                        if parameter.description
                        else {}
                    ),
                }
            )
            for parameter in channel.parameters
        }
        or None,
        messages={
            message.key: v3.Message(
                name=message.name,
                title=message.title,
                summary=message.summary,
                description=message.description,
                contentType=message.content_type,
                payload=message.payload,
                **{
                    "examples": [MessageExample(payload=example) for example in message.examples]
                    or None,
                    **message.fields,
                },
            )
            for message in channel.messages.values()
        },
        bindings=bindings,
    )
    if channel.extension:
        setattr(model, EXTENSION, channel.extension)
    return model


def _operations(channel: Channel, spec: ApiSpec) -> list[tuple[Any, v3.Operation]]:
    result = []
    for operation in channel.operations:
        model = v3.Operation(
            action="send" if operation.mode is Mode.SUBSCRIBE else "receive",
            channel=Reference.to(f"#/channels/{channel.key}"),
            messages=[
                Reference.to(f"#/channels/{channel.key}/messages/{key}")
                for key in operation.messages
            ],
            summary=operation.summary,
            description=operation.description,
            tags=[Tag(name=tag) for tag in operation.tags] or None,
            security=_operation_security(operation, spec),
            reply=_reply(operation, channel),
            bindings={
                "http": {
                    "method": "GET" if operation.mode is Mode.SUBSCRIBE else "POST",
                    "bindingVersion": "0.3.0",
                }
            },
        )
        if operation.scopes:
            setattr(model, SCOPES_EXTENSION, list(operation.scopes))
        if operation.deprecated:
            setattr(model, DEPRECATED_EXTENSION, True)
        result.append((operation, model))
    return result


def _reply(operation: OperationSpec, channel: Channel) -> dict[str, Any] | None:
    reply = operation.reply
    if reply is None:
        return None
    home = reply.channel or channel.key
    written: dict[str, Any] = {
        "channel": {"$ref": f"#/channels/{home}"},
        "messages": [{"$ref": f"#/channels/{home}/messages/{key}"} for key in reply.messages],
    }
    if reply.address:
        written["address"] = {"location": reply.address}
    return written


def _operation_security(
    operation: OperationSpec, spec: ApiSpec
) -> list[dict[str, Any] | Reference] | None:
    """The operation's own schemes; else every scheme when it needs credentials.

    When the servers carry the API's security (``server_security``), an operation without
    requirements of its own says nothing: the servers' requirements already apply.
    """
    if operation.security is not None:
        return _security(operation.scopes, spec, operation.security) or None
    if operation.scopes or (spec.require_auth and not spec.server_security):
        return _security(operation.scopes, spec)
    return None


def _server_security(spec: ApiSpec) -> list[dict[str, Any] | Reference] | None:
    requirements: list[dict[str, Any] | Reference] = []
    for name, scopes in (spec.server_security or {}).items():
        scheme = spec.security_schemes.get(name)
        if scheme is None:
            continue
        if scopes and scheme.get("type") in SCOPED_SCHEME_TYPES:
            requirements.append({**scheme, "scopes": list(scopes)})
        else:
            requirements.append(Reference.to(f"#/components/securitySchemes/{name}"))
    return requirements or None


def _security(
    scopes: tuple[str, ...], spec: ApiSpec, names: tuple[str, ...] | None = None
) -> list[dict[str, Any] | Reference] | None:
    """Each scheme that grants access, written out with the scopes this operation needs.

    A 3.x security requirement is a scheme (or a reference to one, which cannot add scopes).
    OAuth2 and OpenID Connect schemes have a ``scopes`` field; other schemes (HTTP bearer, the
    ``access_token`` query) say which scopes the token must grant in their description, which
    the docs page shows next to the operation. ``x-scopes`` lists them for tools.
    """
    requirements: list[dict[str, Any] | Reference] = []
    needed = ", ".join(f"`{scope}`" for scope in scopes)
    for name, scheme in spec.security_schemes.items():
        if names is not None and name not in names:
            continue
        if not scopes:
            requirements.append(Reference.to(f"#/components/securitySchemes/{name}"))
        elif scheme.get("type") in SCOPED_SCHEME_TYPES:
            requirements.append({**scheme, "scopes": list(scopes)})
        else:
            described = scheme.get("description")
            wording = f"The token must grant the scopes {needed}."
            requirements.append(
                {**scheme, "description": f"{described} {wording}" if described else wording}
            )
    return requirements or None

# in the plugin package, registered under [project.entry-points.fastapi_streaming]
from starlette.requests import HTTPConnection

from fastapi_streaming import hookimpl
from fastapi_streaming.security import BearerAuthenticator, Principal


class KeycloakAuthorizer(BearerAuthenticator):
    def __init__(self, *, realm: str, server_url: str) -> None:
        self.issuer = f"{server_url}/realms/{realm}"

    async def verify(self, token: str, connection: HTTPConnection) -> Principal:
        raise NotImplementedError("check the token against the realm's keys")


@hookimpl
def fastapi_streaming_authorizers():
    return {"keycloak": KeycloakAuthorizer}

from fastapi import FastAPI
from starlette.requests import HTTPConnection

from fastapi_streaming import StreamingAPI
from fastapi_streaming.security import Principal, invalid_token

#: In a real app: a database table of keys and what each may do.
KEYS = {"key-of-the-dashboard": ("dashboard", frozenset({"stocks:read"}))}


class APIKeyAuthenticator:
    """Clients send ``X-API-Key``; each key stands for a client with fixed scopes."""

    async def authenticate(self, connection: HTTPConnection) -> Principal | None:
        key = connection.headers.get("x-api-key")
        if key is None:
            return None  # no credentials: public topics stay open
        if key not in KEYS:
            raise invalid_token("Unknown API key.")
        subject, scopes = KEYS[key]
        return Principal(subject=subject, scopes=scopes)


streaming = StreamingAPI(authorizer=APIKeyAuthenticator())


@streaming.subscribe("/stocks/{symbol}", scopes=["stocks:read"])
async def quotes(event: dict[str, float], symbol: str) -> dict[str, float]:
    return event


app = FastAPI()
streaming.init_app(app)

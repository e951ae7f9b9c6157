"""JWTAuthorizer against tokens signed the ways issuers sign them, with keys served for real."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.requests import HTTPConnection

from fastapi_streaming.errors import Unauthorized
from fastapi_streaming.security import JWTAuthorizer, Principal

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
SECRET = "a-shared-secret-of-at-least-32-bytes!"


def connection(token: str | None = None, *, query: str = "") -> HTTPConnection:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return HTTPConnection({"type": "http", "headers": headers, "query_string": query.encode()})


def token(key: Any, algorithm: str = "HS256", headers: Any = None, **claims: Any) -> str:
    payload = {"sub": "alice", "exp": int(time.time()) + 60, **claims}
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


async def refusal(authorizer: JWTAuthorizer, raw: str) -> str:
    with pytest.raises(Unauthorized) as refused:
        await authorizer.authenticate(connection(raw))
    assert refused.value.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    return str(refused.value.detail)


async def test_hs256_with_audience_and_issuer() -> None:
    authorizer = JWTAuthorizer(key=SECRET, audience="market-api", issuer="https://issuer")
    raw = token(SECRET, aud="market-api", iss="https://issuer", scope="stocks:read orders:read")
    principal = await authorizer.authenticate(connection(raw))
    assert isinstance(principal, Principal)
    assert principal.subject == "alice"
    assert principal.scopes == {"stocks:read", "orders:read"}
    assert principal.expires_at is not None and 55 < principal.expires_in <= 60  # type: ignore[operator]
    assert await refusal(authorizer, token(SECRET, aud="other", iss="https://issuer")) == (
        "The access token is not meant for this API (audience)."
    )
    assert await refusal(authorizer, token(SECRET, aud="market-api", iss="https://evil")) == (
        "The access token comes from an issuer this API does not trust."
    )


async def test_rs256_with_a_pem_public_key_and_the_scp_claim() -> None:
    public = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    authorizer = JWTAuthorizer(key=public, algorithms=["RS256"], scope_claim="scp")
    raw = token(RSA_KEY, "RS256", scp=["orders:write", "orders:read"])
    principal = await authorizer.authenticate(connection(raw))
    assert principal is not None and principal.scopes == {"orders:write", "orders:read"}
    # An HS256 token "signed" with the public key must not pass (algorithm confusion).
    with pytest.raises(jwt.InvalidKeyError):
        token(public, "HS256")
    forged = jwt.api_jws.PyJWS().encode(
        json.dumps({"sub": "mallory", "exp": int(time.time()) + 60}).encode(),
        b"the-public-key-used-as-an-hmac-secret",
        algorithm="HS256",
    )
    assert await refusal(authorizer, forged) == (
        "The access token is signed with an algorithm not accepted."
    )


@pytest.fixture
def jwks_url() -> Iterator[str]:
    """A real HTTP server publishing an EC key, as an issuer's jwks_uri does."""
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY.public_key()))
    document = json.dumps({"keys": [{**jwk, "kid": "key-1", "alg": "ES256", "use": "sig"}]})

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


async def test_es256_with_keys_from_a_jwks_url(jwks_url: str) -> None:
    authorizer = JWTAuthorizer(jwks_url=jwks_url, algorithms=["ES256"])
    raw = token(EC_KEY, "ES256", headers={"kid": "key-1"}, scope="stocks:read")
    principal = await authorizer.authenticate(connection(raw))
    assert principal is not None and principal.scopes == {"stocks:read"}
    unknown = token(EC_KEY, "ES256", headers={"kid": "key-2"})
    assert await refusal(authorizer, unknown) == "The access token's signing key is unknown."
    other_key = ec.generate_private_key(ec.SECP256R1())
    forged = token(other_key, "ES256", headers={"kid": "key-1"})
    assert await refusal(authorizer, forged) == "The access token's signature is not valid."


async def test_a_jwks_document_given_directly() -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    authorizer = JWTAuthorizer(jwks={"keys": [{**jwk, "kid": "k"}]}, algorithms=["RS256"])
    principal = await authorizer.authenticate(
        connection(token(RSA_KEY, "RS256", headers={"kid": "k"}))
    )
    assert principal is not None and principal.subject == "alice"


async def test_leeway_tolerates_clock_skew_and_extends_the_connection() -> None:
    expired = token(SECRET, exp=int(time.time()) - 5)
    assert await refusal(JWTAuthorizer(key=SECRET), expired) == "The access token has expired."
    principal = await JWTAuthorizer(key=SECRET, leeway=30).authenticate(connection(expired))
    assert principal is not None and 20 < principal.expires_in <= 25  # type: ignore[operator]


async def test_tokens_without_expiry_or_subject_are_refused() -> None:
    forever = jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")
    assert await refusal(JWTAuthorizer(key=SECRET), forever) == (
        "The access token lacks the required 'exp' claim."
    )
    allowed = await JWTAuthorizer(key=SECRET, require_expiry=False).authenticate(
        connection(forever)
    )
    assert allowed is not None and allowed.expires_at is None
    anonymous = jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    assert await refusal(JWTAuthorizer(key=SECRET), anonymous) == (
        "The access token lacks the required 'sub' claim."
    )


async def test_no_token_is_no_principal_and_the_query_parameter_counts() -> None:
    authorizer = JWTAuthorizer(key=SECRET)
    assert await authorizer.authenticate(connection()) is None
    from_query = await authorizer.authenticate(connection(query=f"access_token={token(SECRET)}"))
    assert from_query is not None and from_query.subject == "alice"
    header_only = JWTAuthorizer(key=SECRET, allow_query_token=False)
    assert await header_only.authenticate(connection(query=f"access_token={token(SECRET)}")) is None


def test_configuration_mistakes_are_caught_early() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        JWTAuthorizer()
    with pytest.raises(ValueError, match="exactly one"):
        JWTAuthorizer(key=SECRET, jwks={"keys": []})
    with pytest.raises(ValueError, match="'none' is never accepted"):
        JWTAuthorizer(key=SECRET, algorithms=["none"])

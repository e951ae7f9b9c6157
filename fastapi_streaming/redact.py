"""Keep secrets out of what clients and logs see: one helper for URLs, DSNs and free text.

A broker URL (``redis://:PASSWORD@host``), a database DSN (``postgresql://user:pw@host/db``,
``host=db password=pw``) or a request URL (``?access_token=<jwt>``) carries credentials, and
these strings travel: into error messages a client gets, into log records, into exception
text a client library wrote. Everything the package shows of such a string goes through here.

- :func:`redact_url` masks one URL: the password of its user information and the value of
  every query parameter whose *decoded* name is secret-looking (``access%5Ftoken`` is
  ``access_token``).
- :func:`redact_text` does the same to every URL and ``name=value`` pair inside free text.
- :func:`secrets_in` and :func:`scrub` remove a known URL's secrets wherever they appear,
  even where no URL shape is left (a client library quoting the password alone).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

#: What a secret is replaced with.
MASK = "[redacted]"

#: Parameter names (decoded, lower case) whose values are secrets: OAuth and API tokens, and
#: the password and key settings of the brokers' and databases' URLs and DSNs.
SECRET_NAMES = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "auth_token",
        "api_key",
        "apikey",
        "key",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "pwd",
        "pass",
        "sasl_plain_password",
        "sasl_password",
        "ssl_password",
        "sslpassword",
        "keyfile_password",
        "nkey",
        "jwt",
        "signature",
        "sig",
    }
)

#: The user information of a URL: ``scheme://user:password@``, or ``scheme://token@`` (a
#: lone user part is a token for NATS and others, so it is masked too).
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)(?:([^:/?#@\s'\"]*):)?([^@/?#\s'\"]*)@")
#: A ``name=value`` pair in a query string, a DSN or prose.
_PAIR = re.compile(r"(^|[?&;\s\"'(,])([^=&;#\s\"'?(,]+)=([^&;#\s\"',)]*)")

#: Secrets shorter than this are masked only where they stand in a URL or pair: replacing
#: every "ab" in a message would wreck it without protecting much.
MIN_SCRUBBED_LENGTH = 4


def is_secret_name(name: str) -> bool:
    """Whether a parameter named ``name`` (percent-encoded or not) holds a secret."""
    return unquote_plus(name).strip().lower() in SECRET_NAMES


def _mask_pair(match: re.Match[str]) -> str:
    lead, name, value = match.groups()
    if value and is_secret_name(name):
        return f"{lead}{name}={MASK}"
    return match.group(0)


def redact_text(text: str) -> str:
    """``text`` with every URL password and every secret-named parameter's value masked."""
    if "=" not in text and "@" not in text:
        return text
    text = _USERINFO.sub(_mask_userinfo, text)
    return _PAIR.sub(_mask_pair, text)


def _mask_userinfo(match: re.Match[str]) -> str:
    scheme, user, secret = match.groups()
    if user is None:  # scheme://token@
        return f"{scheme}{MASK}@" if secret else match.group(0)
    return f"{scheme}{user}:{MASK}@"


def redact_url(url: str) -> str:
    """A URL (or DSN) fit to show: its password and secret query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"
    query = _PAIR.sub(_mask_pair, parts.query)
    if (netloc, query) != (parts.netloc, parts.query):
        url = urlunsplit(parts._replace(netloc=netloc, query=query))
    return redact_text(url)


def secrets_in(url: str) -> frozenset[str]:
    """The secret values of a URL, as written and decoded, to :func:`scrub` them anywhere."""
    found: set[str] = set()
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return frozenset()
    if password:
        found.update({password, unquote(password)})
    for match in _PAIR.finditer(parts.query):
        _, name, value = match.groups()
        if value and is_secret_name(name):
            found.update({value, unquote_plus(value)})
    return frozenset(secret for secret in found if len(secret) >= MIN_SCRUBBED_LENGTH)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """:func:`redact_text`, and every one of ``secrets`` replaced wherever it appears."""
    text = redact_text(text)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text

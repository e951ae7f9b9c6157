"""Keep access tokens and credentials out of logs.

A token in the ``access_token`` query parameter is part of the URL, and servers log URLs:
uvicorn's access log (``uvicorn.access``) and its WebSocket lines (``uvicorn.error``) would
write a working credential into every log file and log shipper. Broker URLs and DSNs carry
passwords, and client libraries quote them in their errors. :class:`RedactTokens` rewrites
such records (message, arguments and traceback) before any handler formats them.

Parameters are recognised by their *decoded* name: the server reads ``?access%5Ftoken=...``
as ``access_token``, so the log must hide it too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ..redact import MASK, redact_text

#: The loggers that write request URLs or broker errors: uvicorn's, this package's own (and,
#: at the time :func:`install_redaction` runs, every child of it), and the client libraries of
#: the brokers. A filter sees only the records logged to its very logger, so each is named.
LOGGERS = (
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
    "fastapi_streaming",
    "fastapi_streaming.broker",
    "fastapi_streaming.broker.redis",
    "fastapi_streaming.broker.redis_stream",
    "fastapi_streaming.broker.postgres",
    "fastapi_streaming.broker.kafka",
    "fastapi_streaming.fanout",
    "fastapi_streaming.websocket",
    "fastapi_streaming.websub",
    "fastapi_streaming.mqtt",
    "fastapi_streaming.nats",
    "fastapi_streaming.amqp",
    "fastapi_streaming.example",
)
#: Families of loggers whose existing members get the filter too (client libraries log
#: connection errors with the URL they were given).
LOGGER_FAMILIES = (
    "fastapi_streaming",
    "uvicorn",
    "redis",
    "asyncpg",
    "aiokafka",
    "nats",
    "aio_pika",
    "aiormq",
    "aiomqtt",
    "sqlalchemy",
)
REDACTED = MASK


def redact(text: str) -> str:
    """``text`` with every access token, URL password and secret parameter value masked."""
    return redact_text(text)


class RedactTokens(logging.Filter):
    """A logging filter that masks secrets in messages, arguments and tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_clean(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _clean(value) for key, value in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, BaseException):
        text = str(value)
        cleaned = redact_text(text)
        return value if cleaned == text else f"{type(value).__name__}({cleaned!r})"
    return value


def install_redaction(loggers: Iterable[str] = LOGGERS) -> None:
    """Add the filter to ``loggers`` and to the existing members of :data:`LOGGER_FAMILIES`
    (once each; calling again is harmless, and picks up loggers created since).

    Filters on a logger see the records logged to that very logger, which is where uvicorn
    logs requests; logging configuration applied later (``dictConfig``) keeps them.
    """
    existing = [
        name
        for name in logging.Logger.manager.loggerDict
        if any(name == family or name.startswith(family + ".") for family in LOGGER_FAMILIES)
    ]
    for name in dict.fromkeys([*loggers, *existing]):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactTokens) for existing in logger.filters):
            logger.addFilter(RedactTokens())

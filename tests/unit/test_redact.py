"""The one redaction helper: broker URLs, DSNs and free text lose their secrets, nothing else."""

from __future__ import annotations

import pytest

from fastapi_streaming.redact import redact_text, redact_url, scrub, secrets_in


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw1234@127.0.0.1:6379/0", "redis://:[redacted]@127.0.0.1:6379/0"),
        ("redis-stream://user:p%40ss@h:1?maxlen=5", "redis-stream://user:[redacted]@h:1?maxlen=5"),
        (
            "postgresql://app:pw@db/x?sslmode=require&password=pw2",
            "postgresql://app:[redacted]@db/x?sslmode=require&password=[redacted]",
        ),
        (
            "kafka://h:9092?sasl_plain_password=pw&partitions=3",
            "kafka://h:9092?sasl_plain_password=[redacted]&partitions=3",
        ),
        ("nats://s3cr3t-token@h:4222", "nats://[redacted]@h:4222"),
        ("amqp://guest:guest@localhost/", "amqp://guest:[redacted]@localhost/"),
        ("memory://", "memory://"),
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
    ],
)
def test_urls_keep_everything_but_their_secrets(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_free_text_loses_url_passwords_and_dsn_passwords() -> None:
    text = "at redis://:pw1234@h:1 and host=db password=hunter22 user=app, ok"
    assert redact_text(text) == (
        "at redis://:[redacted]@h:1 and host=db password=[redacted] user=app, ok"
    )
    assert redact_text("Error 111 connecting to 127.0.0.1:6379.") == (
        "Error 111 connecting to 127.0.0.1:6379."
    )


def test_known_secrets_are_scrubbed_wherever_they_appear() -> None:
    url = "mqtt://user:Tr0ub4dor@h:1883?token=abcdef"
    assert secrets_in(url) == {"Tr0ub4dor", "abcdef"}
    assert scrub("auth failed for 'Tr0ub4dor' (abcdef)", secrets_in(url)) == (
        "auth failed for '[redacted]' ([redacted])"
    )

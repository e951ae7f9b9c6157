"""The example tests of docs/testing.md pass as the page shows them."""

from __future__ import annotations

from docs_src.testing.test_app import (
    client,
    test_a_dependency_override_changes_what_is_published,
    test_invalid_events_are_refused_like_fastapi_bodies,
    test_orders_need_the_scope_their_security_dependency_asks_for,
    test_sse_subscribers_get_published_quotes,
    test_websocket_subscribers_get_published_quotes,
)

# Collected here: the docs' example tests, with their fixture.
__all__ = [
    "client",
    "test_a_dependency_override_changes_what_is_published",
    "test_invalid_events_are_refused_like_fastapi_bodies",
    "test_orders_need_the_scope_their_security_dependency_asks_for",
    "test_sse_subscribers_get_published_quotes",
    "test_websocket_subscribers_get_published_quotes",
]

"""Hypothesis strategies for what clients send: JSON values, topic addresses, control messages."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

#: Standard JSON numbers only; NaN and Infinity have cases of their own (they are not JSON).
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)

json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=16,
)

#: Addresses of the test apps' topics, near misses, and arbitrary paths.
known_addresses = st.sampled_from(
    [
        "/stocks/AAPL",
        "/rooms/1",
        "/rooms/-1",
        "/rooms/x",
        "/rooms/1.5",
        "/alerts",
        "/audit",
        "/bulk/a",
        "/strict/b",
        "/notes/r",
        "/private/r",
        "/members/r",
        "/nope",
        "/",
        "//",
        "/stocks/",
        "/stocks/A/B",
        "/stocks/%00",
        "/rooms/00000000000000000000000000000001",
    ]
)
arbitrary_addresses = st.text(st.characters(exclude_categories=["Cs"]), max_size=40).map(
    lambda text: "/" + text
)
digit_addresses = st.from_regex(r"\A-?[0-9]{1,200}\Z").map(lambda digits: "/rooms/" + digits)
addresses = known_addresses | arbitrary_addresses | digit_addresses


def quotes() -> st.SearchStrategy[Any]:
    """Bodies shaped like the test app's ``Quote``, with fields of right and wrong types."""
    return st.fixed_dictionaries(
        {},
        optional={
            "symbol": json_values | st.text(max_size=10),
            "price": json_values,
            "extra": json_values,
        },
    )


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    quotes().map(lambda value: json.dumps(value).encode()),
    st.text(max_size=200).map(str.encode),
)

message_types = st.sampled_from(["subscribe", "unsubscribe", "publish", "event", "ack", ""])
control_messages = st.fixed_dictionaries(
    {},
    optional={
        "type": message_types | json_values,
        "id": json_values,
        "topic": addresses | json_values,
        "data": json_values | quotes(),
        "last_event_id": st.uuids().map(str) | json_values,
    },
)

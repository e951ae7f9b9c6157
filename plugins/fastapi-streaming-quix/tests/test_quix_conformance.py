"""The processing conformance suite on the quix engine, against a private tansu broker.

Every test starts a Quix Streams application (a consumer group join, topic creation) and
restarts it once the test's first source topic exists, so they take seconds, not milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest
from fastapi_streaming.testing.private_brokers import private_tansu, session_broker
from fastapi_streaming.testing.processes import PrivateBroker
from fastapi_streaming.testing.processing_conformance import ProcessingConformance

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="session")
def tansu() -> Iterator[PrivateBroker]:
    with session_broker(private_tansu) as broker:
        yield broker


class TestQuixOnTansu(ProcessingConformance):
    engine = "quix"
    patience = 60.0
    unsupported: ClassVar[dict[str, str]] = {}

    @pytest.fixture
    def broker_url(self, tansu: PrivateBroker) -> str:
        return tansu.url

"""The Kafka backend passes the conformance suite against a real Kafka-protocol broker (tansu)."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from fastapi_streaming.brokers.kafka import KafkaBackend
from fastapi_streaming.testing import BackendConformance, BrokerControl, NativePublish
from tests.support.tansu import TansuControl, TansuProcess


@pytest.mark.kafka
class TestKafkaBackend(BackendConformance):
    factory = KafkaBackend

    @pytest.fixture
    def broker_url(self, tansu_broker: TansuProcess) -> str:
        return tansu_broker.url

    @pytest.fixture
    def native_publish(self, tansu_broker: TansuProcess) -> NativePublish:
        async def publish(channel: str, payload: bytes) -> None:
            producer = AIOKafkaProducer(bootstrap_servers=tansu_broker.address)
            await producer.start()
            try:
                await producer.send_and_wait(channel, payload)
            finally:
                await producer.stop()

        return publish

    @pytest.fixture
    def broker_control(self, restartable_tansu: TansuControl) -> BrokerControl:
        return restartable_tansu.ensure_started()  # a no-op unless a test left it down

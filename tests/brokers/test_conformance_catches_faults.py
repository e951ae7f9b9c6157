"""The conformance suite fails backends with the faults seen in the field, and never hangs.

Each faulty backend below is the memory backend with one defect; the suite runs on it in a
separate pytest process (the suite alone, in pytest-asyncio's strict mode), and the test that
guards against that defect must fail while the others still pass.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

FAULTY_BACKENDS = """
import asyncio

from broadcaster._backends.memory import MemoryBackend

from fastapi_streaming.testing import BackendConformance


class Duplicating(MemoryBackend):
    async def publish(self, channel, message):
        await super().publish(channel, message)
        await super().publish(channel, message)


class Truncating(MemoryBackend):
    async def publish(self, channel, message):
        await super().publish(channel, message[:65536])


class NeverSubscribes(MemoryBackend):
    async def subscribe(self, channel):
        await asyncio.Event().wait()


class Leaky(MemoryBackend):
    async def connect(self):
        await super().connect()
        self._heartbeat = asyncio.ensure_future(asyncio.Event().wait())


class Base(BackendConformance):
    url = "memory://"
    instances_share_broker = False
    quiet_seconds = 0.1
    receive_timeout = 1.0


class TestDuplicating(Base):
    factory = Duplicating


class TestTruncating(Base):
    factory = Truncating


class TestNeverSubscribes(Base):
    factory = NeverSubscribes


class TestLeaky(Base):
    factory = Leaky
"""


EXPECTED = [
    ("TestDuplicating::test_shared_backend_delivers_each_message_once", "FAILED"),
    ("TestDuplicating::test_order_of_a_thousand_messages_per_channel", "FAILED"),
    ("TestDuplicating::test_publish_and_receive_on_one_channel", "PASSED"),
    ("TestTruncating::test_large_payload_arrives_whole_or_is_refused_clearly", "FAILED"),
    ("TestTruncating::test_unicode_payloads_arrive_unchanged", "PASSED"),
    ("TestNeverSubscribes::test_publish_and_receive_on_one_channel", "FAILED"),
    ("TestLeaky::test_publish_and_receive_on_one_channel", "ERROR"),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("faults")
    (folder / "test_faulty.py").write_text(textwrap.dedent(FAULTY_BACKENDS))
    node_ids = [f"test_faulty.py::{test}" for test, _ in EXPECTED]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *node_ids],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result.stdout


def _outcomes_of(outcomes: str, name: str) -> set[str]:
    """PASSED, FAILED or ERROR (a test can pass and then fail its teardown) from ``-rA``."""
    found = {
        line.split()[0]
        for line in outcomes.splitlines()
        if line.startswith(("PASSED ", "FAILED ", "ERROR "))
        and (line.endswith(name) or f"{name} - " in line)
    }
    assert found, f"{name} not in the report:\n{outcomes[-3000:]}"
    return found


@pytest.mark.parametrize(("test", "expected"), EXPECTED, ids=[test for test, _ in EXPECTED])
def test_the_test_guarding_a_fault_fails(outcomes: str, test: str, expected: str) -> None:
    assert expected in _outcomes_of(outcomes, f"test_faulty.py::{test}"), outcomes[-3000:]

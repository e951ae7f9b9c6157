"""The in-process backend passes the conformance suite, which shows the suite itself works.

The memory backend is the process itself, so it runs the in-process variant of the suite: the
four tests that need a broker outside the process are replaced by what it promises instead.
"""

from __future__ import annotations

from fastapi_streaming.brokers.memory import MemoryBackend
from fastapi_streaming.testing import BackendConformance, InProcessConformance


class TestMemoryBackend(InProcessConformance):
    url = "memory://"
    factory = MemoryBackend


def test_the_in_process_suite_replaces_only_the_tests_that_need_an_outside_broker() -> None:
    """The replacements keep the suite's names, so none of its tests is lost by renaming."""
    replaced = {
        name
        for name in vars(InProcessConformance)
        if name.startswith("test_") and hasattr(BackendConformance, name)
    }
    assert replaced == {
        "test_several_backends_in_one_process_each_get_every_message",
        "test_native_messages_arrive",
        "test_a_message_that_is_not_utf8_is_skipped",
        "test_delivers_again_after_the_broker_restarts",
    }, replaced

"""The privacy state topic on the embedded broker: writes acknowledged, followers see them."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.conftest import unique_name
from worker.privacy.ledger import Ledger, UserEntry, user_digest
from worker.privacy.state_topic import LedgerFollower, StateWriter, ensure_state_topic, read_ledger

pytestmark = pytest.mark.integration


def _entry(user: str, at: float) -> UserEntry:
    return UserEntry(user_digest(user), user, at, at)


def test_a_follower_sees_every_write_and_a_reader_gets_the_compacted_view(broker: Any) -> None:
    config = {"bootstrap_servers": broker.bootstrap}
    topic = unique_name("privacy-state")
    assert ensure_state_topic(config, topic, timeout_s=15)
    assert not ensure_state_topic(config, topic, timeout_s=15), "already there"
    writer = StateWriter(config, topic)
    changes: list[Ledger] = []
    follower = LedgerFollower(config, topic, interval_s=0.1, on_change=changes.append).start()
    try:
        assert follower.ready.wait(15), "the first read (an empty topic) makes it ready"
        alice, bob = _entry("alice", 1.0), _entry("bob", 2.0)
        writer.write([(alice.key, alice.to_dict()), (bob.key, bob.to_dict())])
        deadline = time.monotonic() + 15
        while len(follower.ledger.users) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert follower.ledger.users == {alice.digest: alice, bob.digest: bob}
        assert follower.ledger.suppressed(alice.digest, 10.0, 100.0)

        # An asynchronous write (the intake's path) calls back once acknowledged; a tombstone removes.
        acked = threading.Event()
        errors: list[BaseException | None] = []
        writer.send((bob.key, None), lambda exc: (errors.append(exc), acked.set()))
        assert acked.wait(15) and errors == [None]
        deadline = time.monotonic() + 15
        while bob.digest in follower.ledger.users and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(follower.ledger.users) == {alice.digest}
        assert changes, "on_change was called"
        assert read_ledger(config, topic).users == {alice.digest: alice}
    finally:
        follower.stop()
        writer.close()


def test_a_missing_topic_reads_as_an_empty_ledger(broker: Any) -> None:
    assert read_ledger({"bootstrap_servers": broker.bootstrap}, unique_name("absent")).users == {}

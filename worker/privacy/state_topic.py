"""The privacy state topic (I/O): every replica's copy of the ledger, and the writes to it.

A compacted one-partition topic (``privacy.state_topic``): small (one record per open
request and per recent job), read in full at start and then followed by every replica, so
a deletion requested on any replica suppresses the user's records on all of them within
about a second. Writes wait for the broker's acknowledgement (acks=all): a request's
offset on the deletion topic is committed only after its record is in the state topic.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog
from kafka import KafkaProducer

from worker.privacy.ledger import Ledger, Record, encode
from worker.schedule.control_topic import ControlTopicReader
from worker.schedule.lease import ensure_control_topic

log = structlog.get_logger(__name__)


def ensure_state_topic(client_config: Mapping[str, Any], topic: str, timeout_s: float = 10.0) -> bool:
    """Create the compacted one-partition state topic if missing; True when created."""
    return ensure_control_topic(client_config, topic, timeout_s)


def read_ledger(client_config: Mapping[str, Any], topic: str, *, timeout_s: float = 10.0) -> Ledger:
    """The ledger as the topic holds it now (one short-lived reader; CLI and tests)."""
    reader = ControlTopicReader(client_config, topic, timeout_s=timeout_s)
    try:
        return Ledger().apply_all((r[0], r[1]) for r in reader.read())
    finally:
        reader.close()


class StateWriter:
    """Writes ledger records; `write` blocks until acknowledged, `send` calls back instead."""

    def __init__(self, client_config: Mapping[str, Any], topic: str, *, timeout_s: float = 10.0) -> None:
        self._config = dict(client_config)
        self.topic = topic
        self.timeout_s = timeout_s
        self._producer: Any = None
        self._lock = threading.Lock()
        #: The highest offset `write` was acknowledged at: a reader that has not applied it yet
        #: does not see this writer's own writes (the leader waits for its follower to catch up).
        self.last_offset = -1

    def _ensure(self) -> Any:
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    **self._config, acks="all", enable_idempotence=True, allow_auto_create_topics=False, linger_ms=5
                )
            return self._producer

    def send(self, record: Record, on_done: Callable[[BaseException | None], None]) -> None:
        """Asynchronous write; `on_done` runs on the producer's I/O thread."""
        key, value = encode(record)
        future = self._ensure().send(self.topic, key=key, value=value)
        future.add_callback(lambda _meta: on_done(None))
        future.add_errback(on_done)

    def write(self, records: Iterable[Record]) -> int:
        """Write and wait for the acknowledgements; returns the offset of the last record (-1: none)."""
        producer = self._ensure()
        futures = [producer.send(self.topic, key=k, value=v) for k, v in map(encode, records)]
        last = -1
        for future in futures:
            last = max(last, int(future.get(timeout=self.timeout_s).offset))
        self.last_offset = max(self.last_offset, last)
        return last

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close(timeout=5)


class LedgerFollower:
    """A thread that reads the state topic to its end, then keeps following it.

    `ledger` is replaced (never mutated) after each read, so readers on other threads see
    either the previous or the new ledger, whole. `ready` is set after the first full read:
    until then the worker does not know whom to suppress and must not send records of
    users (it waits for it at start).
    """

    def __init__(self, client_config: Mapping[str, Any], topic: str, *, timeout_s: float = 10.0,
                 interval_s: float = 0.5, on_change: Callable[[Ledger], None] | None = None) -> None:  # fmt: skip
        self._reader = ControlTopicReader(client_config, topic, timeout_s=timeout_s)
        self._interval_s = interval_s
        self._on_change = on_change
        self.ledger = Ledger()
        self.applied_offset = -1
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read_once(self) -> bool:
        """Fold what is new into a copy of the ledger; True when something changed."""
        fresh = self._reader.read()
        if fresh or not self.ready.is_set():
            current = self.ledger
            self.ledger = Ledger(dict(current.users), dict(current.jobs), current.unreadable).apply_all(
                (r[0], r[1]) for r in fresh
            )
            self.applied_offset = max([self.applied_offset, *(r.offset for r in fresh)])
        self.ready.set()
        return bool(fresh)

    def caught_up(self, offset: int) -> bool:
        """Whether the ledger includes the record written at `offset` (a writer's `last_offset`)."""
        return self.ready.is_set() and self.applied_offset >= offset

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.read_once() and self._on_change is not None:
                    self._on_change(self.ledger)
                self.error = None
            except Exception as exc:  # noqa: BLE001 - keep following; readiness reports it
                if self.error is None:
                    log.warning("cannot read the privacy state topic; retrying", error=str(exc))
                self.error = exc
            self._stop.wait(self._interval_s)

    def start(self) -> LedgerFollower:
        self._thread = threading.Thread(target=self._run, name="privacy-ledger", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._reader.close()


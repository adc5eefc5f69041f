"""Where the leader pins its observations and the other replicas read them (I/O).

`KafkaSnapshotBoard` writes, on the control topic, the leader's claim when it acquires the
lease (waiting for the acknowledgement: its offset is the leadership's generation) and
`Snapshot` records after every tick; non-leaders follow that topic once per tick for the
latest snapshot per solution (snapshot.SnapshotIndex drops a deposed leader's late writes).

Publishing snapshots is asynchronous and best effort, like the lifecycle events: a broker
hiccup loses one (the next tick publishes another); it never fails a tick. A reader error
keeps the snapshots already known and rereads from the beginning at the next call.

Only what a role needs is created: a follower never opens a producer, a leader that never
follows never opens a consumer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import structlog
from kafka import KafkaProducer

from worker.schedule.control_topic import ControlTopicReader, Record
from worker.schedule.snapshot import Snapshot, SnapshotIndex, encode, encode_claim

log = structlog.get_logger(__name__)


class SnapshotBoard(Protocol):
    def claim(self, replica: str, now: float) -> int | None: ...

    def publish(self, snapshot: Snapshot) -> None: ...

    def latest(self) -> Mapping[str, Snapshot]: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def index_of(records: Iterable[Record]) -> SnapshotIndex:
    """Snapshots and the newest claim among control-topic records, oldest first (pure)."""
    index = SnapshotIndex()
    for record in records:
        index.apply(record.key, record.value, record.offset)
    return index


class InMemorySnapshotBoard:
    """A board shared in-process (unit tests; several reconcilers in one test)."""

    def __init__(self) -> None:
        self.snapshots: dict[str, Snapshot] = {}
        self.published: list[Snapshot] = []
        self.claims: list[str] = []
        self.reads = 0

    def claim(self, replica: str, now: float) -> int | None:
        self.claims.append(replica)
        return len(self.claims) - 1

    def publish(self, snapshot: Snapshot) -> None:
        self.published.append(snapshot)
        self.snapshots[snapshot.solution_arn] = snapshot

    def latest(self) -> Mapping[str, Snapshot]:
        self.reads += 1
        return dict(self.snapshots)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


class KafkaSnapshotBoard:
    """`SnapshotBoard` on the control topic (see the module docstring)."""

    def __init__(self, client_config: Mapping[str, Any], topic: str, *, timeout_s: float = 10.0) -> None:
        self._config = dict(client_config)
        self.topic = topic
        self.timeout_s = timeout_s
        self._producer: Any = None
        self._reader: ControlTopicReader | None = None
        self._index = SnapshotIndex()
        self.publish_failures = 0
        self.read_failures = 0

    def _send(self, key: bytes, value: bytes) -> Any:
        if self._producer is None:
            self._producer = KafkaProducer(**self._config, acks="all", linger_ms=5, allow_auto_create_topics=False)
        return self._producer.send(self.topic, key=key, value=value)

    def claim(self, replica: str, now: float) -> int | None:
        """Write this leadership's claim and wait for it; its offset is the generation (None on failure)."""
        try:
            metadata = self._send(*encode_claim(replica, now)).get(timeout=self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - snapshots then carry no generation; retried next tick
            log.warning("could not claim the scheduler leadership on the control topic", error=str(exc))
            return None
        return int(metadata.offset)

    def publish(self, snapshot: Snapshot) -> None:
        try:
            self._send(*encode(snapshot))
        except Exception as exc:  # noqa: BLE001 - best effort: the next tick publishes again
            self.publish_failures += 1
            log.warning("could not publish the scheduler observation", solution=snapshot.solution_arn, error=str(exc))

    def flush(self) -> None:
        if self._producer is None:
            return
        try:
            self._producer.flush(timeout=self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - see publish
            self.publish_failures += 1
            log.warning("scheduler observations not acknowledged in time", error=str(exc))

    def latest(self) -> Mapping[str, Snapshot]:
        """Snapshots as of now: reads what was appended since the last call (short confirm poll)."""
        if self._reader is None:
            self._reader = ControlTopicReader(self._config, self.topic, timeout_s=self.timeout_s)
        first = self._reader.starts_over
        index = SnapshotIndex() if first else self._index  # reading from the beginning: a new index
        try:
            for record in self._reader.read(confirm_ms=300 if first else 100):
                index.apply(record.key, record.value, record.offset)
        except Exception as exc:  # noqa: BLE001 - keep what we know; the reader starts over next time
            self.read_failures += 1
            log.warning("cannot read the leader's observations from the control topic", error=str(exc))
            return dict(self._index.snapshots)
        self._index = index
        return dict(index.snapshots)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._producer is not None:
            with contextlib.suppress(Exception):
                self._producer.close(timeout=5)
            self._producer = None

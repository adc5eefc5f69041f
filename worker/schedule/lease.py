"""The leader lease: Kafka group membership on a one-partition control topic.

Every scheduler replica joins one consumer group subscribed to the control topic; the
group coordinator assigns its single partition to exactly one member, and that member is
the leader. When the leader leaves (clean close) the partition moves at the next
rebalance; when it dies, after ``session_timeout_ms``. Nothing is committed and nothing
read is used: membership alone is the lease.

Threading (kafka-python 3): the consumer is not thread-safe, so one dedicated thread
creates, polls and closes it. Rebalance callbacks run on kafka-python's IO thread and
only flip flags there. The polling thread also re-checks ``assignment()`` after every
poll, and drops leadership when polling fails, so a member that lost its session does
not go on believing it leads.

``generation`` increases on every acquisition: the reconciler reloads its memory when it
changes, because another leader may have acted in between.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog
from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka import errors as kafka_errors
from kafka.admin import NewTopic

log = structlog.get_logger(__name__)

#: The control topic must have exactly one partition: the lease is "who owns partition 0".
CONTROL_PARTITIONS = 1
#: A new control topic is compacted, and its segments roll hourly: the leader republishes its
#: observations every tick and compaction only cleans closed segments, so with the broker's
#: weekly default readers (a new leader, a follower starting, `status`) would read a week of them.
CONTROL_TOPIC_CONFIGS = {"cleanup.policy": "compact", "segment.ms": "3600000"}
_CONFIG_REFUSED = frozenset({kafka_errors.InvalidConfigurationError.errno, kafka_errors.PolicyViolationError.errno})


def ensure_control_topic(client_config: Mapping[str, Any], topic: str, timeout_s: float = 10.0) -> bool:
    """Create the compacted one-partition control topic if missing; True when created.

    An existing topic with more than one partition is refused: with two partitions two
    members could each "lead".
    """
    timeout_ms = max(1000, int(timeout_s * 1000))
    admin = KafkaAdminClient(
        **{"request_timeout_ms": timeout_ms, "bootstrap_timeout_ms": timeout_ms, **client_config},
    )
    try:
        described = admin.describe_topics([topic])
        for entry in described:
            if entry.get("name") == topic and int(entry.get("error_code", 0)) == 0:
                count = len(entry.get("partitions") or [])
                if count != CONTROL_PARTITIONS:
                    raise ValueError(f"control topic {topic!r} has {count} partitions; it must have exactly 1")
                return False
        replication = min(3, max(1, len(admin.describe_cluster()["brokers"])))
        for configs in (CONTROL_TOPIC_CONFIGS, {"cleanup.policy": "compact"}):
            new = NewTopic(topic, CONTROL_PARTITIONS, replication, topic_configs=dict(configs))
            response = admin.create_topics([new], timeout_ms=timeout_ms, raise_errors=False)
            codes = [int(result.get("error_code", 0)) for result in response.get("topics", [])]
            refused = [c for c in codes if c in _CONFIG_REFUSED]
            if refused and configs is CONTROL_TOPIC_CONFIGS:
                log.warning("the broker refused the control topic's segment setting; creating it without",
                            topic=topic, error=kafka_errors.for_code(refused[0]).__name__)  # fmt: skip
                continue
            for code in codes:
                if code not in (0, kafka_errors.TopicAlreadyExistsError.errno):
                    name = kafka_errors.for_code(code).__name__
                    raise RuntimeError(f"cannot create control topic {topic!r}: {name}")
            break
        admin.wait_for_topics([topic], timeout_ms=timeout_ms)
        return True
    finally:
        admin.close()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs on the IO thread: only flips flags."""

    def __init__(self, lease: LeaderLease) -> None:
        self._lease = lease

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        if self._lease.partition in set(assigned):
            self._lease._set_leader(True, "assigned")

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        if self._lease.partition in set(revoked):
            self._lease._set_leader(False, "revoked")

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        if self._lease.partition in set(lost):
            self._lease._set_leader(False, "lost")


class LeaderLease(threading.Thread):
    """Holds (or waits for) the lease until `stop()`; `is_leader` says whether we hold it."""

    def __init__(
        self,
        client_config: Mapping[str, Any],
        topic: str,
        group_id: str,
        *,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 1_000,
        max_poll_interval_ms: int = 30_000,
        on_change: Callable[[bool], None] | None = None,
        poll_timeout_ms: int = 200,
    ) -> None:
        super().__init__(name="scheduler-lease", daemon=True)
        self.topic = topic
        self.partition = TopicPartition(topic, 0)
        self._config: dict[str, Any] = {
            **client_config,
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "latest",
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": heartbeat_interval_ms,
            "max_poll_interval_ms": max_poll_interval_ms,
            "max_partition_fetch_bytes": 64 * 1024,
            "allow_auto_create_topics": False,  # a broker default of N partitions would break the lease
        }
        self._poll_timeout_ms = poll_timeout_ms
        self._on_change = on_change
        self._leader = threading.Event()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._state_lock = threading.Lock()
        self.generation = 0
        self.error: BaseException | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader.is_set() and not self._stopping.is_set()

    def wait_leader(self, timeout_s: float) -> bool:
        """Block until we lead (True) or `timeout_s` passes (False)."""
        return self._leader.wait(timeout_s) and not self._stopping.is_set()

    def wait_joined(self, timeout_s: float) -> bool:
        """Block until the consumer exists and subscribed (not necessarily assigned)."""
        return self._ready.wait(timeout_s)

    def _set_leader(self, leader: bool, why: str) -> None:
        with self._state_lock:
            if leader == self._leader.is_set():
                return
            if leader:
                if self._stopping.is_set():
                    return  # stop() cleared the flag; a last poll must not take the lease back
                self.generation += 1
                self._leader.set()
            else:
                self._leader.clear()
        log.warning("scheduler lease " + ("acquired" if leader else "released"), why=why, topic=self.topic)
        if self._on_change is not None:
            with contextlib.suppress(Exception):
                self._on_change(leader)

    def run(self) -> None:
        consumer: Any = None
        try:
            while not self._stopping.is_set():
                try:
                    if consumer is None:
                        consumer = KafkaConsumer(**self._config)
                        consumer.subscribe([self.topic], listener=_Listener(self))
                        self._ready.set()
                    consumer.poll(timeout_ms=self._poll_timeout_ms)
                    # Authoritative check on the owning thread, in case a callback was missed.
                    self._set_leader(self.partition in consumer.assignment(), "assignment")
                except kafka_errors.KafkaError as exc:
                    self._set_leader(False, f"poll failed: {exc}")
                    log.warning("scheduler lease: consumer error; rejoining", error=str(exc))
                    if consumer is not None:
                        with contextlib.suppress(Exception):
                            consumer.close(autocommit=False, timeout_ms=2000)
                        consumer = None
                    self._stopping.wait(1.0)
        except BaseException as exc:
            self.error = exc
            log.error("scheduler lease thread died", error=repr(exc))
            raise
        finally:
            self._set_leader(False, "stopped")
            if consumer is not None:
                with contextlib.suppress(Exception):
                    consumer.close(autocommit=False, timeout_ms=5000)  # leaves the group: fast failover

    def stop(self, timeout_s: float = 10.0) -> None:
        """Leave the group (the next member takes over at once) and end the thread."""
        self._stopping.set()
        self._leader.clear()
        if self.is_alive():
            self.join(timeout_s)


class StaticLease:
    """A lease that is always (or never) held: for ``retrain --dry-run``, tests, single replicas."""

    def __init__(self, leader: bool = True) -> None:
        self._leader = leader
        self.generation = 1 if leader else 0

    @property
    def is_leader(self) -> bool:
        return self._leader

    def stop(self, timeout_s: float = 0.0) -> None:
        self._leader = False


def wait_for(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll `predicate` until true or timeout (a small helper for the CLI and tests)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)

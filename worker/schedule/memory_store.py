"""Where the scheduler's memory survives leader changes: the compacted control topic.

Personalize cannot tell a new leader which versions the gate refused, which it promoted
and what each campaign served before (the rollback target). That `Memory`, plus which
outcomes were already announced as lifecycle events, is one small JSON document per
solution, written as a keyed record (``memory/<solution ARN>``) to the control topic —
the same one-partition topic whose group membership is the lease. The topic is created
with ``cleanup.policy=compact``, so Kafka keeps the latest document per solution
forever and the topic stays tiny.

* ``save`` waits for the broker's acknowledgement (acks=all): once an action's outcome
  is recorded, the next leader will read it.
* ``load_all`` reads the partition from the beginning up to its end (control_topic.py)
  and keeps the last document per key. The same topic carries the leader's published
  observations (snapshot.py); they are skipped here.

Order of writes versus actions (documented trade-off): the reconciler records an
action's memory *after* the Personalize call succeeded. A leader crashing between the
two loses only that record: a promotion then looks "foreign" to the next leader (a
failure is alerted, not rolled back automatically); a training is still found by
listing the versions, so nothing is ever started twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import structlog
from kafka import KafkaProducer

from worker.schedule.control_topic import Record, read_control_topic
from worker.schedule.state import Memory

log = structlog.get_logger(__name__)

KEY_PREFIX = "memory/"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SolutionState:
    """What one solution's scheduler remembers: the policy's Memory plus announcements.

    ``announced`` maps an outcome key (a version, import job or campaign update) to the
    status already published, so a new leader does not announce it again. ``baselined``
    is False until the first observation marked the pre-existing history as known.
    """

    memory: Memory = field(default_factory=Memory)
    announced: Mapping[str, str] = field(default_factory=dict)
    baselined: bool = False

    def with_memory(self, memory: Memory) -> SolutionState:
        return replace(self, memory=memory)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "memory": self.memory.to_dict(),
            "announced": dict(self.announced),
            "baselined": self.baselined,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SolutionState:
        return cls(
            memory=Memory.from_dict(data.get("memory", {})),
            announced={str(k): str(v) for k, v in data.get("announced", {}).items()},
            baselined=bool(data.get("baselined", False)),
        )


class MemoryStore(Protocol):
    def load_all(self) -> dict[str, SolutionState]: ...

    def save(self, solution_arn: str, state: SolutionState) -> None: ...

    def close(self) -> None: ...


class InMemoryStore:
    """A store that lives as long as the process (tests, ``--dry-run`` without Kafka)."""

    def __init__(self, states: Mapping[str, SolutionState] | None = None) -> None:
        self.states: dict[str, SolutionState] = dict(states or {})
        self.saves = 0

    def load_all(self) -> dict[str, SolutionState]:
        return dict(self.states)

    def save(self, solution_arn: str, state: SolutionState) -> None:
        self.states[solution_arn] = state
        self.saves += 1

    def close(self) -> None:
        return None


def states_of(records: Iterable[Record]) -> dict[str, SolutionState]:
    """The last memory per solution among control-topic records, oldest first (pure)."""
    states: dict[str, SolutionState] = {}
    for record in records:
        decoded = decode_record(record.key, record.value)
        if decoded is None:
            continue
        arn, state = decoded
        if state is None:
            states.pop(arn, None)
        else:
            states[arn] = state
    return states


def decode_record(key: bytes | None, value: bytes | None) -> tuple[str, SolutionState | None] | None:
    """(solution ARN, state) of one control-topic record; None for records of other kinds.

    A null value (a tombstone) deletes the solution's memory.
    """
    if key is None:
        return None
    name = key.decode("utf-8", "replace")
    if not name.startswith(KEY_PREFIX):
        return None
    arn = name[len(KEY_PREFIX) :]
    if value is None:
        return arn, None
    try:
        data = json.loads(value)
    except ValueError:
        log.warning("unreadable scheduler memory record; ignored", key=name)
        return None
    if not isinstance(data, dict) or int(data.get("format", 0)) > FORMAT_VERSION:
        log.warning("scheduler memory record of an unknown format; ignored", key=name)
        return None
    return arn, SolutionState.from_dict(data)


class KafkaMemoryStore:
    """`MemoryStore` on the compacted control topic (see the module docstring)."""

    def __init__(self, client_config: Mapping[str, Any], topic: str, *, timeout_s: float = 10.0) -> None:
        self._config = dict(client_config)
        self.topic = topic
        self.timeout_s = timeout_s
        self._producer: Any = None

    def load_all(self) -> dict[str, SolutionState]:
        return states_of(read_control_topic(self._config, self.topic, timeout_s=self.timeout_s))

    def save(self, solution_arn: str, state: SolutionState) -> None:
        if self._producer is None:
            self._producer = KafkaProducer(
                **self._config, acks="all", enable_idempotence=True, allow_auto_create_topics=False
            )
        value = json.dumps(state.to_dict(), sort_keys=True).encode()
        future = self._producer.send(self.topic, key=(KEY_PREFIX + solution_arn).encode(), value=value)
        future.get(timeout=self.timeout_s)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None

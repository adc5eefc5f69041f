"""Topic administration the worker needs at start-up: make sure its topics exist.

Kept apart from the consumer because it is a one-shot, blocking concern with its own
client (`KafkaAdminClient`) that is opened and closed around each call. kafka-python
3.0.x blocking calls have no overall wall-clock limit, so every call here passes an
explicit timeout derived from the caller's budget.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from kafka import KafkaAdminClient
from kafka import errors as kafka_errors

#: Replication never exceeds this, even on large clusters (the usual production choice).
MAX_REPLICATION = 3


class TopicAdminError(RuntimeError):
    """A topic could not be created or described (other than "already exists")."""


def replication_for(broker_count: int) -> int:
    """Replication factor for new topics: 1 on a single broker, else min(3, brokers)."""
    if broker_count <= 1:
        return 1
    return min(MAX_REPLICATION, broker_count)


def _admin(bootstrap: str, client_config: Mapping[str, Any] | None, timeout_s: float) -> KafkaAdminClient:
    """An admin client whose own timeouts fit in `timeout_s`.

    `client_config` (security settings: security_protocol, ssl_*, sasl_*) is applied
    last so a caller can also override a timeout deliberately.
    """
    timeout_ms = max(1000, int(timeout_s * 1000))
    config: dict[str, Any] = {
        "request_timeout_ms": timeout_ms,
        "bootstrap_timeout_ms": timeout_ms,
        "client_id": "clickstream-worker-admin",
    }
    config.update(client_config or {})
    config["bootstrap_servers"] = bootstrap
    return KafkaAdminClient(**config)


def _remaining_ms(deadline: float) -> int:
    return max(1000, int((deadline - time.monotonic()) * 1000))


def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    client_config: Mapping[str, Any] | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics of `topics` (name -> partition count) that do not exist yet.

    Existing topics are left as they are, whatever their partition count (changing it
    would reshuffle keys across partitions; that is an operator's decision). A
    concurrent creator winning the race (TopicAlreadyExists) is not an error, which
    makes this safe to run from every replica at start-up. Returns the names this call
    created, after they are visible in metadata with a leader for every partition.
    """
    for name, partitions in topics.items():
        if partitions < 1:
            raise ValueError(f"topic {name!r}: partition count must be >= 1, got {partitions}")
    if not topics:
        return []
    deadline = time.monotonic() + timeout_s
    admin = _admin(bootstrap, client_config, timeout_s)
    try:
        existing = set(admin.list_topics())
        missing = {name: count for name, count in topics.items() if name not in existing}
        if not missing:
            return []
        replication = replication_for(len(admin.describe_cluster()["brokers"]))
        request = {
            name: {"num_partitions": count, "replication_factor": replication} for name, count in missing.items()
        }
        response = admin.create_topics(request, timeout_ms=_remaining_ms(deadline), raise_errors=False)
        created = _created_names(response)
        if created:
            admin.wait_for_topics(created, timeout_ms=_remaining_ms(deadline))
        return created
    finally:
        admin.close()


def _created_names(response: Mapping[str, Any]) -> list[str]:
    """Names created by a CreateTopics response; raise on any error but "already exists"."""
    created: list[str] = []
    failures: list[str] = []
    for result in response.get("topics", []):
        code = int(result.get("error_code", 0))
        name = str(result["name"])
        if code == 0:
            created.append(name)
        elif code != kafka_errors.TopicAlreadyExistsError.errno:
            error = kafka_errors.for_code(code)
            failures.append(f"{name}: {error.__name__} {result.get('error_message') or ''}".strip())
    if failures:
        raise TopicAdminError("could not create topics: " + "; ".join(failures))
    return created


def partition_count(
    bootstrap: str,
    topic: str,
    *,
    client_config: Mapping[str, Any] | None = None,
    timeout_s: float = 10.0,
) -> int | None:
    """Number of partitions of `topic`, or None when it does not exist.

    Uses a metadata request that never auto-creates the topic, so asking is harmless.
    """
    admin = _admin(bootstrap, client_config, timeout_s)
    try:
        described = admin.describe_topics([topic])
    finally:
        admin.close()
    for entry in described:
        if entry.get("name") != topic:
            continue
        code = int(entry.get("error_code", 0))
        if code == kafka_errors.UnknownTopicOrPartitionError.errno:
            return None
        if code != 0:
            raise TopicAdminError(f"describe {topic!r}: {kafka_errors.for_code(code).__name__}")
        return len(entry.get("partitions") or [])
    return None

"""A commented example configuration generated from the settings model (so it cannot drift)."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from worker.config import (
    DeliverySettings,
    KafkaSettings,
    ObservabilitySettings,
    PersonalizeSettings,
    ValidationSettings,
)

_SECTIONS: list[tuple[str, type[BaseModel], str]] = [
    ("kafka", KafkaSettings, "Kafka connection and group. KAFKA_BOOTSTRAP_SERVERS overrides bootstrap_servers."),
    ("personalize", PersonalizeSettings, "Personalize client; AWS_REGION, AWS_ENDPOINT_URL_PERSONALIZE_EVENTS apply."),
    ("delivery", DeliverySettings, "Batching, quotas, retries, backpressure."),
    ("validation", ValidationSettings, "Record validation window and size guard."),
    ("observability", ObservabilitySettings, "Logs, metrics and probes."),
]

_TOPICS_EXAMPLE = """\
# Input topics. Each is bound to one dataset and one mapping; rejected records go to its DLQ.
topics:
  - name: clicks                     # Segment/RudderStack `track` events
    dataset_type: interactions
    tracking_id: 00000000-0000-0000-0000-000000000000   # from CreateEventTracker
    # schema_file: schemas/interactions.json           # default: the shipped schema
    # dlq_topic: clicks.dlq                            # default: <name>.dlq
    # mapping:                                         # default: Segment `track` (see README)
    #   user_id: [userId]
    #   session_id: [context.sessionId, anonymousId]
    #   event_type: [event]
    #   allowed_event_types: [view, click, add-to-cart, purchase]
    #   event_type_renames: {"Product Viewed": view}
  - name: items
    dataset_type: items
    dataset_arn: arn:aws:personalize:us-east-1:123456789012:dataset/my-group/ITEMS
  - name: users
    dataset_type: users
    dataset_arn: arn:aws:personalize:us-east-1:123456789012:dataset/my-group/USERS
"""


def _render_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        return '""'
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return "null"
    return json.dumps(value)


def _field_line(name: str, info: FieldInfo) -> str:
    default = info.get_default(call_default_factory=True)
    comment = f"  # {info.description}" if info.description else ""
    env_hint = ""
    return f"  {name}: {_render_value(default)}{comment}{env_hint}"


def example_config() -> str:
    """The YAML printed by `clickstream-worker config example`."""
    parts = [
        "# clickstream-worker configuration (generated from the settings model).",
        "# Every setting can be overridden by an environment variable WORKER_<SECTION>__<NAME>,",
        "# e.g. WORKER_DELIVERY__LINGER_MS=20. AWS credentials come from the standard chain.",
        "",
        _TOPICS_EXAMPLE,
    ]
    for section, model, doc in _SECTIONS:
        parts.append(f"# {doc}")
        parts.append(f"{section}:")
        parts.extend(_field_line(name, info) for name, info in model.model_fields.items())
        parts.append("")
    return "\n".join(parts)


def reference_table() -> str:
    """Markdown table of every setting, for the README's configuration reference."""
    rows = ["| setting | default | environment | description |", "|---|---|---|---|"]
    for section, model, _doc in _SECTIONS:
        for name, info in model.model_fields.items():
            default = _render_value(info.get_default(call_default_factory=True))
            env = f"WORKER_{section.upper()}__{name.upper()}"
            rows.append(f"| `{section}.{name}` | `{default}` | `{env}` | {info.description or ''} |")
    return "\n".join(rows)

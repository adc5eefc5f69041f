"""A commented example configuration generated from the settings model (so it cannot drift)."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from worker.config.archive import ArchiveSettings
from worker.config.delivery import (
    DEPRECATED_DELIVERY_RATES,
    DeliverySettings,
    DlqSettings,
    PersonalizeSettings,
    ValidationSettings,
)
from worker.config.kafka import KafkaSettings
from worker.config.observability import ObservabilitySettings
from worker.config.privacy import DeletionJobSettings, DeletionRequestMapping, PrivacySettings
from worker.config.quotas import DefaultQuota, GroupQuota, QuotaSettings
from worker.config.scheduler import SchedulerSettings
from worker.config.topics import TopicSettings

_SECTIONS: list[tuple[str, type[BaseModel], str]] = [
    ("kafka", KafkaSettings, "Kafka connection and group. KAFKA_BOOTSTRAP_SERVERS overrides bootstrap_servers."),
    ("personalize", PersonalizeSettings, "Personalize client; AWS_REGION, AWS_ENDPOINT_URL_PERSONALIZE_EVENTS apply."),
    ("delivery", DeliverySettings, "Batching, retries, backpressure."),
    ("validation", ValidationSettings, "Record validation window and size guard."),
    ("observability", ObservabilitySettings, "Logs, metrics and probes."),
    ("dlq", DlqSettings, "Dead-letter replay (`clickstream-worker dlq replay`)."),
    ("scheduler", SchedulerSettings, "Retraining scheduler (per-solution policies under `solutions:`, see README)."),
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


_SCHEDULER_EXAMPLE = """\
# A managed solution (uncomment under scheduler: and set enabled: true):
#  solutions:
#    - solution_arn: arn:aws:personalize:us-east-1:123456789012:solution/shop-user-personalization
#      campaigns:
#        - arn: arn:aws:personalize:us-east-1:123456789012:campaign/shop-live
#          min_provisioned_tps: 1
#      full: {cron: "0 3 * * 0"}          # FULL retrain Sundays 03:00 (timezone: UTC)
#      update: {interval_s: 7200}        # UPDATE (new items) every 2 h, User-Personalization only
#      data_volume: {min_new_interactions: 500000, trigger: true}
#      min_interval_s: 3600
#      max_trainings_per_day: 2
#      stop_training_after_s: 43200
#      gate: {metric: normalized_discounted_cumulative_gain_at_10, max_relative_drop: 0.05,
#             floors: {precision_at_10: 0.01}}
"""


def _render_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        return '""'
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return "null"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value)


def _field_line(name: str, info: FieldInfo) -> str:
    default = info.get_default(call_default_factory=True)
    comment = f"  # {info.description}" if info.description else ""
    env_hint = ""
    return f"  {name}: {_render_value(default)}{comment}{env_hint}"


#: Settings still read but no longer written in the example (their replacement is).
_DEPRECATED = {("delivery", name) for name in DEPRECATED_DELIVERY_RATES}

_QUOTAS_DOC = ("Each dataset group's Personalize quota for the WHOLE fleet (the Service Quotas value, not quota "
               "/ replicas): each replica takes its share by partitions and adapts.")


def _quotas_example() -> list[str]:
    lines = [f"# {_QUOTAS_DOC}", "quotas:"]
    lines.append(_field_line("sharing", QuotaSettings.model_fields["sharing"]))
    lines.append("  default:  # " + (QuotaSettings.model_fields["default"].description or ""))
    lines.extend("  " + _field_line(name, info) for name, info in DefaultQuota.model_fields.items())
    lines.append("  groups: {}  # " + (QuotaSettings.model_fields["groups"].description or ""))
    lines.append("#  groups:                            # a raised quota (uncomment under quotas:)")
    lines.append("#    my-group: {put_events_rps: 2500}  # my-group = topics[].dataset_group")
    return lines


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
        parts.extend(_field_line(name, info) for name, info in model.model_fields.items()
                     if (section, name) not in _DEPRECATED)
        parts.append("")
        if section == "delivery":
            parts.extend([*_quotas_example(), ""])
    parts.append(_SCHEDULER_EXAMPLE)
    parts.append("# The S3 archive sink of delivered interactions (optional; uncomment to enable):")
    parts.append("# archive:")
    for name, info in ArchiveSettings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        value = "my-archive-bucket" if info.is_required() else _render_value(default)
        parts.append(f"#   {name}: {value}" + (f"  # {info.description}" if info.description else ""))
    return "\n".join(parts)


def reference_table() -> str:
    """Markdown table of every setting, for the README's configuration reference."""
    rows = ["| setting | default | environment | description |", "|---|---|---|---|"]
    for name, info in TopicSettings.model_fields.items():
        default = "required" if info.is_required() else _render_value(info.get_default(call_default_factory=True))
        rows.append(f"| `topics[].{name}` | `{default}` | (file only) | {info.description or ''} |")
    for section, model, _doc in _SECTIONS:
        for name, info in model.model_fields.items():
            default = _render_value(info.get_default(call_default_factory=True))
            env = f"WORKER_{section.upper()}__{name.upper()}"
            rows.append(f"| `{section}.{name}` | `{default}` | `{env}` | {info.description or ''} |")
        if section == "delivery":
            rows.extend(_quota_rows())
    for name, info in ArchiveSettings.model_fields.items():
        default = "required" if info.is_required() else _render_value(info.get_default(call_default_factory=True))
        rows.append(f"| `archive.{name}` | `{default}` | `WORKER_ARCHIVE__{name.upper()}` | {info.description or ''} |")
    rows.extend(_privacy_rows())
    return "\n".join(rows)


def _privacy_rows() -> list[str]:
    rows = []
    for prefix, model in (("privacy", PrivacySettings), ("privacy.mapping", DeletionRequestMapping),
                          ("privacy.jobs", DeletionJobSettings)):
        for name, info in model.model_fields.items():
            if (prefix, name) in (("privacy", "mapping"), ("privacy", "jobs")):
                continue  # their fields follow
            default = "required" if info.is_required() else _render_value(info.get_default(call_default_factory=True))
            env = "WORKER_" + "__".join(part.upper() for part in (*prefix.split("."), name))
            rows.append(f"| `{prefix}.{name}` | `{default}` | `{env}` | {info.description or ''} |")
    return rows


def _quota_rows() -> list[str]:
    rows = []
    sharing = QuotaSettings.model_fields["sharing"]
    rows.append(f"| `quotas.sharing` | `{_render_value(sharing.default)}` | `WORKER_QUOTAS__SHARING` | "
                f"{sharing.description} |")
    for name, info in DefaultQuota.model_fields.items():
        rows.append(f"| `quotas.default.{name}` | `{_render_value(info.default)}` | "
                    f"`WORKER_QUOTAS__DEFAULT__{name.upper()}` | {info.description} |")
    for name, info in GroupQuota.model_fields.items():
        rows.append(f"| `quotas.groups.<group>.{name}` | `quotas.default.{name}` | "
                    f"`WORKER_QUOTAS__GROUPS__<GROUP>__{name.upper()}` | {info.description} "
                    "The group is named as its topics name it: topics[].dataset_group, else the group in the "
                    "dataset ARN, else the tracking ID. |")
    return rows


README_START = "<!-- config-reference:start (generated by `make docs`; do not edit) -->"
README_END = "<!-- config-reference:end -->"


def render_readme(text: str) -> str:
    """README text with the configuration reference block regenerated."""
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    return text[:start] + "\n" + reference_table() + "\n" + text[end:]


if __name__ == "__main__":  # `make docs`
    import sys
    from pathlib import Path

    readme = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    readme.write_text(render_readme(readme.read_text(encoding="utf-8")), encoding="utf-8")

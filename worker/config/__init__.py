"""Every settings model of the worker, in one package.

One YAML file (``--config`` / ``WORKER_CONFIG``) plus environment overrides, validated into
`WorkerSettings` by `load_settings` (`loader`). A section per module: `kafka`, `topics` (each
topic's `mapping`), `delivery` (the Personalize client, batching, validation bounds,
dead-letter replay), `quotas` (each dataset group's quota, shared by the fleet),
`observability`, `archive` (the S3 sink), `scheduler` (with the per-solution policies of
`solutions`). `docs` renders the commented example and the README's
reference table from these models, so neither can drift.
"""

from worker.config.archive import ArchiveSettings
from worker.config.base import ConfigError, check_endpoint_security, format_validation_error
from worker.config.delivery import DeliverySettings, DlqSettings, PersonalizeSettings, ValidationSettings
from worker.config.kafka import KafkaSettings
from worker.config.loader import ToolSettings, WorkerSettings, load_settings, load_tool_settings
from worker.config.observability import ObservabilitySettings
from worker.config.quotas import GroupQuota, QuotaSettings
from worker.config.scheduler import LeaseSettings, SchedulerSettings
from worker.config.topics import DEFAULT_SCHEMA_DIR, TopicSettings

__all__ = [
    "DEFAULT_SCHEMA_DIR",
    "ArchiveSettings",
    "ConfigError",
    "DeliverySettings",
    "DlqSettings",
    "GroupQuota",
    "KafkaSettings",
    "LeaseSettings",
    "ObservabilitySettings",
    "PersonalizeSettings",
    "QuotaSettings",
    "SchedulerSettings",
    "ToolSettings",
    "TopicSettings",
    "ValidationSettings",
    "WorkerSettings",
    "check_endpoint_security",
    "format_validation_error",
    "load_settings",
    "load_tool_settings",
]

"""Settings -> the registry payload reader of one topic (used by `worker.app.build_routes`).

Topics that name the same registry share one schema cache and one client: a schema ID
means the same schema for all of them. Each topic has its own gate (records are held per
topic, and a registry outage pauses only the topics that need it).
"""

from __future__ import annotations

from typing import Any

from worker.config.topics import ConfluentRegistrySettings, GlueRegistrySettings, TopicSettings
from worker.decoding.gate import SchemaGate
from worker.decoding.payload import RegistryPayload, SchemaCache
from worker.decoding.sources import ConfluentRegistry, GlueRegistry, SchemaSource


class Registries:
    """One (source, cache) per distinct registry configuration."""

    def __init__(self) -> None:
        self._shared: dict[str, tuple[SchemaSource, SchemaCache]] = {}

    def payload(self, topic: TopicSettings, target: Any) -> RegistryPayload | None:
        """The topic's payload reader, or None for `format: json`."""
        settings = topic.registry
        if topic.format == "json" or settings is None:
            return None
        key = f"{topic.format}:{settings.model_dump_json()}"
        shared = self._shared.get(key)
        if shared is None:
            source: SchemaSource
            if isinstance(settings, ConfluentRegistrySettings):
                source = ConfluentRegistry(settings)
            else:
                assert isinstance(settings, GlueRegistrySettings)
                source = GlueRegistry(settings)
            shared = self._shared[key] = (source, SchemaCache())
        source, cache = shared
        gate = SchemaGate(target, source, cache, retry_max_s=settings.retry_max_s)
        return RegistryPayload(topic.format, cache, gate)

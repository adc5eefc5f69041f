"""topics[].format, topics[].registry and topics[].mapping.preset: valid shapes and the errors that name the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.config import ConfigError, load_settings
from worker.config.topics import ConfluentRegistrySettings, GlueRegistrySettings
from worker.decoding.wiring import Registries
from worker.ingest.sender import Target
from worker.records import DatasetType

SECRET = "registry-secret-hunter2"


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **topic: Any) -> Any:
    for name in ("WORKER_CONFIG", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    data = {"topics": [{"name": "clicks", "dataset_type": "interactions", "tracking_id": "t", **topic}]}
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_settings(path).topics[0]


def error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **topic: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, monkeypatch, **topic)
    return str(caught.value)


def test_json_is_the_default_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    topic = load(tmp_path, monkeypatch)
    assert topic.format == "json" and topic.registry is None


def test_confluent_registry_with_auth_and_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    topic = load(tmp_path, monkeypatch, format="confluent", registry={
        "url": "https://registry.example:8081", "username": "key", "password": SECRET, "ca_file": "/ca.pem"})
    assert isinstance(topic.registry, ConfluentRegistrySettings)
    assert topic.registry.password.get_secret_value() == SECRET and SECRET not in repr(topic)


def test_glue_registry_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    topic = load(tmp_path, monkeypatch, format="glue")
    assert isinstance(topic.registry, GlueRegistrySettings) and topic.registry.retry_max_s == 30.0


@pytest.mark.parametrize(("topic", "expected"), [
    ({"format": "confluent"}, "set registry.url to the Schema Registry URL"),
    ({"format": "json", "registry": {"url": "https://r"}}, "set format to confluent or glue, or remove registry"),
    ({"format": "confluent", "registry": {"url": "ftp://r"}}, "is not an http(s) URL"),
    ({"format": "confluent", "registry": {"url": "https://u:p@r"}}, "move them to registry.username"),
    ({"format": "confluent", "registry": {"url": "https://r", "password": SECRET}}, "set registry.username"),
    ({"format": "confluent", "registry": {"url": "http://registry.internal:8081", "username": "u",
                                          "password": SECRET}}, "use https"),
    ({"format": "confluent", "registry": {"url": "https://r", "cert_file": "/c.pem"}}, "registry.key_file"),
    ({"format": "confluent", "registry": {"url": "https://r", "region": "eu-west-1"}}, "registry.region"),
    ({"format": "glue", "registry": {"url": "https://r"}}, "registry.url"),
    ({"format": "avro"}, "topics.0.format"),
    ({"mapping": {"preset": "mixpanel"}}, "mapping.interactions.preset: Input should be 'segment'"),
])
def test_errors_name_the_setting_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            topic: dict[str, Any], expected: str) -> None:
    message = error(tmp_path, monkeypatch, **topic)
    assert expected in message and SECRET not in message


def test_mapping_preset_and_override_in_a_topic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    topic = load(tmp_path, monkeypatch, mapping={"preset": "amplitude", "user_id": ["user_properties.login"]})
    mapping = topic.effective_mapping
    assert mapping.preset == "amplitude" and mapping.user_id == ("user_properties.login",)
    assert mapping.timestamp_unit == "iso8601_or_milliseconds" and mapping.event_id == ("insert_id",)


def test_topics_sharing_a_registry_share_its_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = {"url": "https://registry.example:8081"}
    first = load(tmp_path, monkeypatch, format="confluent", registry=registry)
    second = first.model_copy(update={"name": "other"})
    registries = Registries()
    target = Target("clicks", DatasetType.INTERACTIONS, scope="g", tracking_id="t")
    a, b = registries.payload(first, target), registries.payload(second, target)
    assert a is not None and b is not None and a.cache is b.cache and a.gate is not b.gate
    assert registries.payload(load(tmp_path, monkeypatch), target) is None

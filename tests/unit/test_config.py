"""Settings: file + environment layering, and errors that name the setting and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from worker.config import ConfigError, load_settings
from worker.config.docs import example_config, reference_table
from worker.records import DatasetType

MINIMAL = {
    "topics": [{"name": "clicks", "dataset_type": "interactions", "tracking_id": "tid-1"}],
}


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "AWS_REGION", "AWS_DEFAULT_REGION", "WORKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_minimal_file_gets_defaults(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, MINIMAL))
    topic = settings.topics[0]
    assert topic.dead_letter_topic == "clicks.dlq"
    assert topic.schema_path.name == "interactions.json" and topic.schema_path.exists()
    assert settings.delivery.put_events_rps == 1000
    assert settings.delivery.put_items_rps == 10
    assert settings.kafka.bootstrap_servers == "localhost:9092"


def test_well_known_env_overrides_file_and_worker_env_overrides_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = {**MINIMAL, "kafka": {"bootstrap_servers": "file:9092"}, "personalize": {"region": "eu-west-1"}}
    path = _write(tmp_path, data)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env:9092")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    settings = load_settings(path)
    assert settings.kafka.bootstrap_servers == "env:9092"
    assert settings.personalize.region == "us-west-2"
    monkeypatch.setenv("WORKER_KAFKA__BOOTSTRAP_SERVERS", "worker:9092")
    monkeypatch.setenv("WORKER_DELIVERY__LINGER_MS", "7")
    settings = load_settings(path)
    assert settings.kafka.bootstrap_servers == "worker:9092"
    assert settings.delivery.linger_ms == 7


def test_worker_config_env_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_CONFIG", str(_write(tmp_path, MINIMAL)))
    assert load_settings().topics[0].name == "clicks"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"topics": [{"name": "clicks", "dataset_type": "interactions"}]}, "tracking_id"),
        ({"topics": [{"name": "items", "dataset_type": "items"}]}, "dataset_arn"),
        ({"topics": []}, "no input topics"),
        ({**MINIMAL, "delivery": {"linger_ms": -1}}, "delivery.linger_ms"),
        ({**MINIMAL, "delivery": {"lingr_ms": 5}}, "delivery.lingr_ms"),
        ({**MINIMAL, "kafka": {"security_protocol": "TLS"}}, "kafka.security_protocol"),
        ({"topics": [{"name": "a", "dataset_type": "clicks", "tracking_id": "t"}]}, "topics.0.dataset_type"),
        (
            {"topics": [{"name": "a", "dataset_type": "interactions", "tracking_id": "t", "dlq_topic": "a"}]},
            "dead-letter topic is also an input",
        ),
    ],
)
def test_invalid_settings_name_the_setting_and_fix(tmp_path: Path, data: object, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, data))
    message = str(info.value)
    assert needle in message
    assert "fix:" in message


def test_missing_and_malformed_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_settings(scalar)


def test_rate_scope_is_the_dataset_group(tmp_path: Path) -> None:
    data = {
        "topics": [
            {
                "name": "items",
                "dataset_type": "items",
                "dataset_arn": "arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS",
            }
        ]
    }
    topic = load_settings(_write(tmp_path, data)).topics[0]
    assert topic.rate_scope == "shop"
    assert topic.dataset_type is DatasetType.ITEMS


def test_example_config_is_loadable_and_complete(tmp_path: Path) -> None:
    text = example_config()
    path = tmp_path / "example.yaml"
    path.write_text(text)
    settings = load_settings(path)
    assert [t.name for t in settings.topics] == ["clicks", "items", "users"]
    for field in ("linger_ms", "delivery_timeout_s", "redact_user_ids", "max_inflight_events"):
        assert field in text
    assert "`delivery.linger_ms`" in reference_table()


def test_secrets_are_not_rendered(tmp_path: Path) -> None:
    data = {
        **MINIMAL,
        "kafka": {
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": "u",
            "sasl_plain_password": "hunter2",
            "security_protocol": "SASL_SSL",
        },
    }
    settings = load_settings(_write(tmp_path, data))
    assert "hunter2" not in repr(settings)
    assert settings.kafka.client_config()["sasl_plain_password"] == "hunter2"


def test_readme_configuration_reference_is_current() -> None:
    from pathlib import Path

    from worker.config.docs import render_readme

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert render_readme(readme) == readme, "README's configuration reference is stale: run `make docs`"


def test_commented_scheduler_example_is_valid() -> None:
    from worker.config.archive import ArchiveSettings
    from worker.config.scheduler import SchedulerSettings

    text = example_config()
    block = text[text.index("#  solutions:"):text.index("# The S3 archive sink")]
    uncommented = "\n".join(line[1:] for line in block.splitlines() if line.startswith("#"))
    settings = SchedulerSettings.model_validate({"enabled": True, **yaml.safe_load(uncommented)})
    assert settings.solutions[0].full is not None and settings.solutions[0].gate.max_relative_drop == 0.05
    archive = text[text.index("# archive:"):]
    lines = [line[2:] for line in archive.splitlines() if line.startswith("# ")]
    parsed = yaml.safe_load("\n".join(lines))
    assert ArchiveSettings.model_validate(parsed["archive"]).bucket == "my-archive-bucket"


def test_the_archive_moved_out_of_the_scheduler_section_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({
        "topics": [{"name": "clicks", "dataset_type": "interactions", "tracking_id": "t"}],
        "scheduler": {"archive": {"bucket": "my-archive-bucket"}},
    }))
    with pytest.warns(FutureWarning, match="scheduler.archive moved to archive"):
        settings = load_settings(path)
    assert settings.archive is not None and settings.archive.bucket == "my-archive-bucket"

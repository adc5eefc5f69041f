"""Kafka connection, consumer-group and fetch settings (kafka-python 3.x names)."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from worker.config.base import ConfigError, _Section
from worker.kafka_security import MskIamTokenProvider

_MSK_REGION_FIX = ("kafka.msk_iam_region: OAUTHBEARER (MSK IAM) needs the cluster's region; fix: set "
                   "kafka.msk_iam_region (WORKER_KAFKA__MSK_IAM_REGION) or AWS_REGION")

class KafkaSettings(_Section):
    """Connection and consumer-group settings (kafka-python 3.x names)."""

    bootstrap_servers: str = Field("localhost:9092", description="Comma-separated host:port list.")
    group_id: str = Field("clickstream-worker", description="Consumer group; replicas share it.")
    client_id: str = "clickstream-worker"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = Field(None, description="PLAIN/SCRAM password (never logged).")
    msk_iam_region: str | None = Field(
        None, description="OAUTHBEARER with Amazon MSK IAM: the cluster's region (default: AWS_REGION)."
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a new group starts; earliest so nothing published before start is lost."
    )
    session_timeout_ms: int = Field(45_000, ge=1_000)
    heartbeat_interval_ms: int = Field(3_000, ge=100)
    max_poll_interval_ms: int = Field(300_000, ge=1_000)
    max_poll_records: int = Field(2_000, ge=1)
    commit_interval_s: float = Field(2.0, gt=0, description="How often finished offsets are committed.")
    fetch_max_wait_ms: int = Field(
        100, ge=0, description="Longest a fetch waits for data; kafka-python's 500 ms default adds latency at low load."
    )
    fetch_min_bytes: int = Field(
        1, ge=1,
        description="A fetch answers once this much data is ready (or fetch_max_wait_ms passed). Larger values "
        "mean fewer, fuller fetches at the cost of up to fetch_max_wait_ms latency; 64 KiB measured no gain at "
        "11k events/s.",
    )
    request_timeout_ms: int = Field(30_000, ge=1_000)
    isolation_level: Literal["read_committed", "read_uncommitted"] = Field(
        "read_committed",
        description="read_committed skips records of aborted transactions (Kafka Streams, Flink exactly-once, "
        "librdkafka transactional producers); kafka-python's own default, read_uncommitted, delivers them.",
    )
    metadata_max_age_ms: int = Field(
        30_000, ge=1_000,
        description="How often topic metadata is refreshed: partitions added to a topic are consumed within "
        "this time (kafka-python's default is 5 minutes).",
    )
    max_partition_fetch_bytes: int = Field(
        1_048_576, ge=1024,
        description="Largest batch fetched per partition; a record larger than this stalls its partition on "
        "brokers older than 0.10.1 (newer brokers return it anyway).",
    )
    stall_after_s: float = Field(
        60.0, gt=0,
        description="A partition with lag and no progress for this long is reported stalled (metric "
        "clickstream_partition_stalled, a warning, a /readyz detail).",
    )
    partition_retry_s: float = Field(
        30.0, gt=0,
        description="A partition paused on a fetch error (missing codec, corrupt batch, ...) is retried after "
        "this long, doubling up to 10 minutes; the other partitions keep flowing meanwhile.",
    )

    @model_validator(mode="after")
    def _msk_region(self) -> KafkaSettings:
        if self.sasl_mechanism == "OAUTHBEARER" and not (
            self.msk_iam_region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        ):
            raise ValueError(_MSK_REGION_FIX.removeprefix("kafka.msk_iam_region: "))
        return self

    def client_config(self) -> dict[str, Any]:
        """Settings shared by consumer, producer and admin client (security included)."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            config.update(
                ssl_cafile=self.ssl_cafile,
                ssl_certfile=self.ssl_certfile,
                ssl_keyfile=self.ssl_keyfile,
                ssl_check_hostname=self.ssl_check_hostname,
            )
        if self.sasl_mechanism == "OAUTHBEARER":
            region = self.msk_iam_region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            if not region:
                raise ConfigError(_MSK_REGION_FIX)
            config["sasl_oauth_token_provider"] = MskIamTokenProvider(region)
        if self.sasl_mechanism:
            config["sasl_mechanism"] = self.sasl_mechanism
            if self.sasl_plain_username is not None:
                config["sasl_plain_username"] = self.sasl_plain_username
            if self.sasl_plain_password is not None:
                config["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        return config

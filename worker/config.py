"""The worker's one settings model: a YAML file plus environment overrides.

Precedence (highest first): explicit arguments, ``WORKER_*`` environment variables
(nested with ``__``, e.g. ``WORKER_DELIVERY__LINGER_MS=20``), the well-known variables
operators already set (``KAFKA_BOOTSTRAP_SERVERS``, ``AWS_REGION``/``AWS_DEFAULT_REGION``),
then the YAML file (``--config`` or ``WORKER_CONFIG``), then defaults.

AWS credentials are never part of this model: botocore's standard chain (environment,
profile, container/instance role) finds them, and botocore itself honours the
service-specific ``AWS_ENDPOINT_URL_PERSONALIZE_EVENTS`` / ``AWS_ENDPOINT_URL_PERSONALIZE``
/ ``AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME`` variables, so a local Personalize is selected
exactly as users expect.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.kafka_security import MskIamTokenProvider
from worker.mapping import MappingSpec, default_mapping
from worker.records import DatasetType
from worker.schedule.settings_io import SchedulerSettings


def _default_schema_dir() -> Path:
    """`schemas/` of a source checkout, else the copy a wheel installs under <prefix>/share."""
    checkout = Path(__file__).resolve().parent.parent / "schemas"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "clickstream-worker" / "schemas"


#: Schemas shipped with the project, used when a topic names none.
DEFAULT_SCHEMA_DIR = _default_schema_dir()

_ARN_GROUP = re.compile(r"^arn:[a-z\d-]+:personalize:[^:]*:[^:]*:dataset/([^/]+)/")


_MSK_REGION_FIX = ("kafka.msk_iam_region: OAUTHBEARER (MSK IAM) needs the cluster's region; fix: set "
                   "kafka.msk_iam_region (WORKER_KAFKA__MSK_IAM_REGION) or AWS_REGION")


class ConfigError(Exception):
    """An invalid configuration; the message names each setting and how to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class TopicSettings(_Section):
    """One input topic, bound to one Personalize dataset and one mapping."""

    name: str = Field(min_length=1, max_length=249, description="Kafka topic to consume.")
    dataset_type: DatasetType = Field(description="interactions (PutEvents), items (PutItems) or users (PutUsers).")
    tracking_id: str | None = Field(None, description="Event tracker ID; required for interactions.")
    dataset_arn: str | None = Field(None, description="Items/Users dataset ARN; required for items/users.")
    dataset_group: str | None = Field(
        None,
        description="Rate-limit scope (quotas are per dataset group). Default: from the dataset ARN, "
        "else the tracking ID.",
    )
    schema_file: Path | None = Field(None, description="Avro schema; default schemas/<dataset_type>.json.")
    mapping: MappingSpec | None = Field(None, description="Field mapping; default reads Segment events.")
    dlq_topic: str | None = Field(None, description="Dead-letter topic; default <name>.dlq.")

    @model_validator(mode="before")
    @classmethod
    def _mapping_kind_from_dataset_type(cls, data: Any) -> Any:
        """A topic's `mapping:` block need not repeat its kind: it is the topic's dataset type."""
        if isinstance(data, dict) and isinstance(data.get("mapping"), dict) and data.get("dataset_type"):
            data = {**data, "mapping": {"kind": data["dataset_type"], **data["mapping"]}}
        return data

    @model_validator(mode="after")
    def _check_target(self) -> TopicSettings:
        if self.dataset_type is DatasetType.INTERACTIONS and not self.tracking_id:
            raise ValueError(
                f"topic {self.name!r} feeds interactions: set tracking_id to the event tracker's "
                "trackingId (CreateEventTracker / DescribeEventTracker)"
            )
        if self.dataset_type is not DatasetType.INTERACTIONS and not self.dataset_arn:
            raise ValueError(
                f"topic {self.name!r} feeds {self.dataset_type.value}: set dataset_arn to the "
                f"{self.dataset_type.value} dataset's ARN"
            )
        return self

    @property
    def dead_letter_topic(self) -> str:
        return self.dlq_topic or f"{self.name}.dlq"

    @property
    def schema_path(self) -> Path:
        return self.schema_file or DEFAULT_SCHEMA_DIR / f"{self.dataset_type.value}.json"

    @property
    def effective_mapping(self) -> MappingSpec:
        return self.mapping or default_mapping(self.dataset_type)

    @property
    def rate_scope(self) -> str:
        """Personalize quotas are per dataset group; approximate when the group is unknown."""
        if self.dataset_group:
            return self.dataset_group
        if self.dataset_arn and (match := _ARN_GROUP.match(self.dataset_arn)):
            return match.group(1)
        return self.tracking_id or self.dataset_arn or self.name


class PersonalizeSettings(_Section):
    """How the worker reaches Personalize. Endpoints default to botocore's resolution."""

    region: str | None = Field(None, description="Default: AWS_REGION / AWS_DEFAULT_REGION.")
    events_endpoint_url: str | None = Field(
        None, description="Override; AWS_ENDPOINT_URL_PERSONALIZE_EVENTS works too (read by botocore)."
    )
    client: Literal["lean", "botocore"] = Field(
        "lean",
        description="lean: botocore credentials (refreshed off the event loop) + SigV4 over a pre-serialised "
        "body on aiohttp's keep-alive pool (several times less CPU per call; no HTTP proxy support); botocore: "
        "aiobotocore's full client (honours proxy settings).",
    )
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(
        10.0, gt=0,
        description="lean: longest wait from sending a call to its complete response; botocore: socket read "
        "timeout. A timed-out call is retried (backoff) until delivery_timeout_s.",
    )
    allow_insecure_http: bool = Field(
        False,
        description="Accept a plain http:// Personalize endpoint on a host other than this machine (e.g. a "
        "compose network's local stand-in). Off: such an endpoint is a start-up error, since signed requests "
        "carrying user IDs would cross the network unencrypted.",
    )
    parameter_validation: bool = Field(
        False,
        description="botocore client-side validation; off because the worker validates every record "
        "itself (stricter: maxima and patterns) and it costs CPU on every call.",
    )


def check_endpoint_security(url: str, *, allow_insecure_http: bool, what: str) -> None:
    """Refuse a plain-http endpoint off this machine unless `personalize.allow_insecure_http` is set."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or allow_insecure_http:
        return
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"{what} {url} is plain http to a host that is not this machine: signed requests carrying user IDs "
            "would cross the network unencrypted. Fix: use https, or set personalize.allow_insecure_http: true "
            "(WORKER_PERSONALIZE__ALLOW_INSECURE_HTTP=true) for a trusted network such as a compose stand-in"
        )


class DeliverySettings(_Section):
    """Batching, concurrency, quotas, retries and backpressure."""

    linger_ms: float = Field(50.0, ge=0, description="How long a partial batch waits for more events.")
    max_concurrency: int = Field(64, ge=1, description="Concurrent Put* calls per worker process.")
    put_events_rps: float = Field(1000.0, gt=0, description="PutEvents quota per dataset group.")
    put_items_rps: float = Field(10.0, gt=0, description="PutItems quota per dataset group.")
    put_users_rps: float = Field(10.0, gt=0, description="PutUsers quota per dataset group.")
    delivery_timeout_s: float = Field(
        300.0, gt=0, description="Retry budget per batch; after it records go to the DLQ (stage delivery)."
    )
    config_fault_retry_s: float = Field(
        30.0, gt=0, description="While a topic is stopped on a configuration fault, re-probe this often."
    )
    max_inflight_events: int = Field(20_000, ge=10, description="Pause fetching above this many events.")
    max_inflight_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    drain_timeout_s: float = Field(30.0, gt=0, description="SIGTERM: time to finish in-flight work.")


class ValidationSettings(_Section):
    """Sanity window for timestamps and the raw size guard."""

    max_past_days: float = Field(730.0, gt=0, description="Reject events older than this.")
    max_future_seconds: float = Field(86_400.0, ge=0, description="Reject events further in the future.")
    max_record_bytes: int = Field(1_000_000, ge=1024, description="Reject larger raw values unparsed.")


class ObservabilitySettings(_Section):
    """Logs, metrics, probes."""

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    redact_user_ids: bool = Field(True, description="Hash user/session IDs in logs (personal data).")
    redaction_salt: SecretStr = Field(SecretStr(""), description="Salt for the redaction hash.")
    require_redaction_salt: bool = Field(
        False,
        description="Refuse to start while redaction is on and the salt is empty: unsalted hashes of guessable "
        "user IDs can be reversed with a dictionary. The Kubernetes manifests turn it on.",
    )
    http_host: str = "0.0.0.0"
    http_port: int = Field(9108, ge=0, le=65535, description="Serves /metrics, /healthz, /readyz.")

    @model_validator(mode="after")
    def _salt_when_required(self) -> ObservabilitySettings:
        if self.require_redaction_salt and self.redact_user_ids and not self.redaction_salt.get_secret_value():
            raise ValueError(
                "observability.redaction_salt is empty while redact_user_ids and require_redaction_salt are on: "
                "set WORKER_OBSERVABILITY__REDACTION_SALT (in Kubernetes: the redaction-salt key of the "
                "clickstream-worker-secrets Secret) to a long random string"
            )
        return self


class DlqSettings(_Section):
    """Dead-letter replay."""

    replay_origin_key: SecretStr | None = Field(
        None,
        description="Key shared by `dlq replay` and the worker: replayed records carry an HMAC of their "
        "first position, and only then keep the event ID derived from it. Without it a replayed event "
        "without its own ID gets a new ID (a record that had in fact reached Personalize is stored twice).",
    )


class WorkerSettings(_Section):
    """Everything `clickstream-worker run` needs."""

    kafka: KafkaSettings = KafkaSettings()
    topics: list[TopicSettings] = Field(default_factory=list)
    personalize: PersonalizeSettings = PersonalizeSettings()
    delivery: DeliverySettings = DeliverySettings()
    validation: ValidationSettings = ValidationSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    dlq: DlqSettings = DlqSettings()
    scheduler: SchedulerSettings = SchedulerSettings()

    @model_validator(mode="after")
    def _check_topics(self) -> WorkerSettings:
        if not self.topics:
            raise ValueError("no input topics: add at least one entry under `topics`")
        names = [t.name for t in self.topics]
        if len(set(names)) != len(names):
            raise ValueError(f"topics: a topic is listed twice: {names}")
        clash = set(names) & {t.dead_letter_topic for t in self.topics}
        if clash:
            raise ValueError(f"topics: a dead-letter topic is also an input topic: {sorted(clash)}")
        return self


def _well_known_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Variables operators already use for Kafka and AWS, below WORKER_* in precedence."""
    result: dict[str, Any] = {}
    if servers := environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        result["kafka"] = {"bootstrap_servers": servers}
    if region := environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION"):
        result["personalize"] = {"region": region}
    return result


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist; fix: pass --config PATH or set WORKER_CONFIG") from exc
    except yaml.YAMLError as exc:
        # Not str(exc): PyYAML quotes the offending lines, which may hold a password.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}; fix the file's syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, not {type(data).__name__}; "
                          "fix: start from `clickstream-worker config example`")
    return data


#: Parts of a setting's name that mark a secret: its value is never echoed in an error.
SECRET_NAME_PARTS = ("password", "secret", "salt", "token", "key", "credential", "sasl")


def _shown_input(loc: tuple[Any, ...], value: Any) -> str:
    """What an error may say about the offending input: never a secret, never a whole section.

    A section-level error (no topics, a duplicate topic, a DLQ clash) has the whole settings
    input as its `input`, secrets included: only its type is named.
    """
    if any(part in str(name).lower() for name in loc for part in SECRET_NAME_PARTS):
        return "<hidden: a secret>"
    if isinstance(value, SecretStr):
        return "<hidden: a secret>"
    if isinstance(value, dict | list | tuple):
        return f"<a {type(value).__name__} of {len(value)} entries>"
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: the dotted setting, what is wrong, how to fix it (never a secret)."""
    lines = ["invalid configuration:"]
    for error in exc.errors():
        loc = tuple(error["loc"])
        msg = error["msg"].removeprefix("Value error, ")
        if not loc or (len(loc) == 1 and error["type"] == "value_error"):
            # A rule over several settings: its message says what to change.
            where = "topics" if msg.startswith(("no input topics", "topics:")) else ".".join(map(str, loc))
            lines.append(f"  - {where or '(settings)'}: {msg}; fix: edit the config file given with --config FILE "
                         "(or WORKER_CONFIG)")
            continue
        name = ".".join(str(part) for part in loc)
        env = "WORKER_" + "__".join(str(p).upper() for p in loc if not isinstance(p, int))
        fix = {
            "missing": "add it to the config file",
            "extra_forbidden": "remove it (unknown setting; check the spelling against `config example`)",
        }.get(error["type"], "correct the value")
        also = "" if any(isinstance(p, int) for p in loc) or loc[0] == "topics" else f", or set {env}"
        # An unknown setting may be a misspelt secret ("pasword"): its value is never shown.
        shown = "a value, not shown" if error["type"] == "extra_forbidden" else _shown_input(loc, error.get("input"))
        lines.append(f"  - {name}: {msg} (got {shown}); fix: {fix}{also}")
    return "\n".join(lines)


def load_settings(path: str | Path | None = None, **overrides: Any) -> WorkerSettings:
    """Load the YAML file (``path`` or ``WORKER_CONFIG``), apply env overrides, validate.

    Environment variables win over the file; `overrides` (from the command line) win over both.
    Raises ConfigError with a message naming each bad setting.
    """
    try:
        return WorkerSettings.model_validate(_layered(path, overrides))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from exc


class ToolSettings(_Section):
    """What tools such as `dlq replay` read: any topics are optional."""

    model_config = ConfigDict(extra="ignore")

    kafka: KafkaSettings = KafkaSettings()
    dlq: DlqSettings = DlqSettings()
    topics: list[TopicSettings] = Field(default_factory=list)


def load_tool_settings(path: str | Path | None = None) -> ToolSettings:
    """The `kafka`, `dlq` and `topics` sections with the same layers as `load_settings` (file,
    KAFKA_BOOTSTRAP_SERVERS, WORKER_*), without requiring topics."""
    try:
        return ToolSettings.model_validate(_layered(path, {}))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from exc


def _layered(path: str | Path | None, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """File values as the lowest-precedence layer, the environment on top, then `overrides`."""
    file_data: dict[str, Any] = {}
    chosen = path or os.environ.get("WORKER_CONFIG")
    if chosen:
        file_data = _read_yaml(Path(chosen))
    worker_env = _WorkerEnv().model_dump(exclude_none=True)  # WORKER_* variables, nested by "__"
    data = _deep_merge(_deep_merge(file_data, _well_known_env(os.environ)), worker_env)
    return _deep_merge(data, overrides)


class _WorkerEnv(BaseSettings):
    """Reads only WORKER_* variables (no validation of completeness) so they can be layered."""

    model_config = SettingsConfigDict(env_prefix="WORKER_", env_nested_delimiter="__", extra="ignore")

    kafka: dict[str, Any] | None = None
    topics: list[dict[str, Any]] | None = None
    personalize: dict[str, Any] | None = None
    delivery: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    observability: dict[str, Any] | None = None
    dlq: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None

"""No secret in any output: config errors, logs, metrics, probes, DLQ headers, every command.

Distinctive secrets go in through the config file and the environment (SASL password,
redaction salt, replay origin key, AWS secret key and session token); every class of
configuration error is triggered and every command runs; all of stdout, stderr, log files,
/metrics, /readyz, /healthz and the dead-letter records' headers are grepped. The counts
are written to build/test-results/secrets_grep.json.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO_ROOT
from tests.integration.worker_support import (
    TANSU_CONSUMER,
    WorkerProcess,
    free_port,
    make_events,
    produce,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.integration

SECRETS = {
    "kafka.sasl_plain_password": "S3CRET-sasl-4f1d",
    "observability.redaction_salt": "S3CRET-salt-9a2c",
    "dlq.replay_origin_key": "S3CRET-origin-7e3b",
    "AWS_SECRET_ACCESS_KEY": "S3CRET-aws-5c8d",
    "AWS_SESSION_TOKEN": "S3CRET-token-2b6e",
}
TRACKING_ID = "11111111-2222-3333-4444-555555555555"
RESULTS = REPO_ROOT / "build" / "test-results" / "secrets_grep.json"


class Outputs:
    """Everything the commands printed, with where it came from."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: str | bytes) -> None:
        self.texts.append((where, text.decode("utf-8", "replace") if isinstance(text, bytes) else text))

    def hits(self) -> list[str]:
        return [f"{where}: {secret}" for where, text in self.texts for secret in SECRETS.values() if secret in text]


@pytest.fixture(scope="module")
def outputs() -> Iterable[Outputs]:
    collected = Outputs()
    yield collected
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"outputs_grepped": len(collected.texts),
                                   "bytes_grepped": sum(len(t) for _w, t in collected.texts),
                                   "secrets": len(SECRETS), "hits": len(collected.hits())}, indent=2) + "\n")


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRETS["AWS_SECRET_ACCESS_KEY"],
            "AWS_SESSION_TOKEN": SECRETS["AWS_SESSION_TOKEN"],
            "WORKER_OBSERVABILITY__REDACTION_SALT": SECRETS["observability.redaction_salt"],
            "WORKER_DLQ__REPLAY_ORIGIN_KEY": SECRETS["dlq.replay_origin_key"], **extra}


def _base(bootstrap: str = "127.0.0.1:9", endpoint: str = "http://127.0.0.1:9") -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": bootstrap, "sasl_plain_username": "worker",
                  "sasl_plain_password": SECRETS["kafka.sasl_plain_password"], **TANSU_CONSUMER},
        "personalize": {"region": "us-east-1", "events_endpoint_url": endpoint},
        "observability": {"http_host": "127.0.0.1", "http_port": 0, "log_format": "json"},
        "topics": [{"name": "clicks", "dataset_type": "interactions", "tracking_id": TRACKING_ID}],
    }


def _run(outputs: Outputs, where: str, args: list[str], *, env: dict[str, str] | None = None,
         timeout_s: float = 60.0, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "worker.cli", *args], capture_output=True, text=True,
                            timeout=timeout_s, check=False, env=env or _env(), input=stdin)
    outputs.add(f"{where} stdout", result.stdout)
    outputs.add(f"{where} stderr", result.stderr)
    return result


def _without(data: dict[str, Any], *path: str) -> dict[str, Any]:
    out = json.loads(json.dumps(data))
    node = out
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return out


def _config_errors(tmp_path: Path) -> dict[str, str]:
    """Every class of configuration error, each as a file's text (secrets included)."""
    base = _base()
    topic = base["topics"][0]
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    _config_errors.busy = busy  # type: ignore[attr-defined]  # kept open for the port-in-use case
    cases: dict[str, Any] = {
        "no topics": {**base, "topics": []},
        "duplicate topic": {**base, "topics": [topic, topic]},
        "dead-letter topic is an input": {**base, "topics": [topic, {**topic, "name": "clicks.dlq"}]},
        "wrong type": {**base, "kafka": {**base["kafka"], "bootstrap_servers": ["a", "b"]}},
        "wrong type of a secret": {**base, "kafka": {**base["kafka"], "sasl_plain_password": {"x": 1}}},
        "unknown setting": {**base, "kafka": {**base["kafka"], "pasword": SECRETS["kafka.sasl_plain_password"]}},
        "missing required": {**base, "topics": [_without(topic, "tracking_id")]},
        "value out of range": {**base, "delivery": {"linger_ms": -1}},
        "msk without region": {**base, "kafka": {**base["kafka"], "sasl_mechanism": "OAUTHBEARER",
                                                 "security_protocol": "SASL_SSL"}},
        "salt required": {**base, "observability": {**base["observability"], "require_redaction_salt": True,
                                                    "redaction_salt": ""}},
        "insecure endpoint": {**base, "personalize": {"events_endpoint_url": "http://personalize.example:80"}},
        "port in use": {**base, "observability": {**base["observability"], "http_port": busy.getsockname()[1]}},
    }
    texts = {name: yaml.safe_dump(data) for name, data in cases.items()}
    texts["YAML syntax error on the secret's line"] = (
        f'kafka:\n  sasl_plain_password: "{SECRETS["kafka.sasl_plain_password"]}\n  bootstrap_servers: [\n')
    texts["not a mapping"] = f"- {SECRETS['kafka.sasl_plain_password']}\n"
    return texts


def test_config_errors_never_print_a_secret(tmp_path: Path, outputs: Outputs) -> None:
    env = {**_env(), "AWS_REGION": "", "AWS_DEFAULT_REGION": ""}  # the MSK case needs a region it lacks
    every_command = {"no topics", "wrong type of a secret", "YAML syntax error on the secret's line"}
    for name, text in _config_errors(tmp_path).items():
        path = tmp_path / f"{name.replace(' ', '_')}.yaml"
        path.write_text(text)
        case_env = env
        if name == "salt required":  # the environment's salt would win over the file's empty one
            case_env = {k: v for k, v in env.items() if k != "WORKER_OBSERVABILITY__REDACTION_SALT"}
        result = _run(outputs, f"{name}: run", ["run", "--config", str(path)], env=case_env, timeout_s=90)
        assert result.returncode == 2, f"{name}: {result.returncode} {result.stderr[-2000:]}"
        assert "fix" in result.stderr.lower(), f"{name}: the error names no fix: {result.stderr}"
        if name in every_command:  # the other commands load settings through the same code
            for command in (["validate", "--config", str(path), "-"], ["status", "--config", str(path)],
                            ["dlq", "replay", "--topic", "clicks.dlq", "--config", str(path)]):
                result = _run(outputs, f"{name}: {command[0]}", command, env=env, timeout_s=90, stdin="")
                # dlq replay needs no topics: with those settings it fails on the (absent) broker instead.
                assert result.returncode in (1, 2), f"{name} {command[0]}: {result.stderr[-2000:]}"
                assert "Traceback" not in result.stderr, f"{name} {command[0]}: {result.stderr[-2000:]}"
    _config_errors.busy.close()  # type: ignore[attr-defined]
    assert outputs.hits() == [], outputs.hits()


def test_commands_and_a_running_worker_never_output_a_secret(
    tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any, outputs: Outputs
) -> None:
    topic = kafka_topic(partitions=2, prefix="secrets")
    lp = local_personalize(trackers=[TRACKING_ID])
    config = _base(broker.bootstrap, lp.endpoint_url)
    config["kafka"] = {k: v for k, v in config["kafka"].items() if not k.startswith("sasl")}  # Tansu: no SASL
    config["kafka"]["group_id"] = f"g-{topic}"
    config["topics"] = [{"name": topic, "dataset_type": "interactions", "tracking_id": TRACKING_ID}]
    config["observability"]["http_port"] = free_port()
    config["scheduler"] = {"personalize_endpoint_url": lp.endpoint_url, "solutions": [
        {"solution_arn": "arn:aws:personalize:us-east-1:000000000000:solution/nothing-here"}]}
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump(config))
    # The SASL password reaches the settings through the environment; with no sasl_mechanism (the
    # embedded broker has no SASL listener) it is loaded but unused: a careless dump would print it.
    env = _env(WORKER_KAFKA__SASL_PLAIN_USERNAME="worker",
               WORKER_KAFKA__SASL_PLAIN_PASSWORD=SECRETS["kafka.sasl_plain_password"])

    records, produced = make_events(60, 0.2, seed=9, run_id="secrets")
    produce(broker.bootstrap, topic, records)
    worker = WorkerProcess(path, tmp_path / "worker.log",
                           env={k: v for k, v in env.items() if k.startswith(("WORKER_", "AWS_"))})
    worker.start()
    try:
        wait_for(lambda: len(lp.events(TRACKING_ID)) >= len(produced.good_ids), 90, message="delivered")
        dlq = read_topic(broker.bootstrap, f"{topic}.dlq", produced.bad_count, timeout_s=60)
        assert len(dlq) >= produced.bad_count
        for record in dlq:
            outputs.add("dlq record headers", repr(record.headers))
        for route in ("/metrics", "/readyz", "/healthz"):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}{route}", timeout=5) as response:
                    outputs.add(route, response.read())
            except urllib.error.HTTPError as exc:
                outputs.add(route, exc.read())
        assert worker.terminate() == 0
    finally:
        worker.kill()
    outputs.add("worker log", worker.log_path.read_text(errors="replace"))

    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(v.decode("utf-8", "replace") for _k, v in records[:20]) + "\n")
    for command in (["config", "example"], ["config", "reference"], ["--help"], ["run", "--help"],
                    ["validate", "--config", str(path), str(events)],
                    ["validate", "--config", str(path), "--redact", str(events)],
                    ["dlq", "replay", "--topic", f"{topic}.dlq", "--config", str(path), "--idle-timeout", "1"],
                    ["status", "--config", str(path)], ["retrain", "--config", str(path), "--dry-run"]):
        _run(outputs, " ".join(command[:2]), command, env=env, timeout_s=120)
    assert outputs.hits() == [], outputs.hits()

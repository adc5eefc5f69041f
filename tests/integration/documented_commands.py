"""Every command line the project documents, read from the files that document them.

Sources (paths relative to the repository root):

* ``README.md``: each line of a fenced shell code block (```bash, sh, shell, console or no
  language) and each backticked command in the first column of the "Commands" table;
* ``Dockerfile``: for each stage with its own ENTRYPOINT/CMD, the command the image runs
  (ENTRYPOINT + CMD, exec form), and each stage's HEALTHCHECK command;
* ``docker-compose.yml``: for each service, the command its container runs (a service built
  from this repository gets its image's ENTRYPOINT/CMD from the Dockerfile target, overridden by
  ``entrypoint:``/``command:`` as Compose does) and its ``healthcheck:`` test;
* ``deploy/kubernetes/*.yaml``: for each container of each workload, ``command`` + ``args`` (the
  image's ENTRYPOINT when only ``args`` is given, the image's CMD when neither is).

A `DocumentedCommand` keeps the command exactly as documented (placeholders such as ``B`` or
``worker.yaml``, container paths, ``0.0.0.0`` ...): substituting real values is the test's job.
Its `key` (source | location | program and subcommand) is what the test matches its coverage
against, so a command added to any of these files shows up as uncovered.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
KUBERNETES_DIR = ROOT / "deploy" / "kubernetes"

#: Fenced code blocks whose lines are shell commands ("" = no language given).
SHELL_FENCES = frozenset({"", "bash", "sh", "shell", "console", "zsh"})
_SUBCOMMAND_WORD = re.compile(r"[a-z][a-z0-9-]*")


@dataclass(frozen=True)
class DocumentedCommand:
    """One documented command line, as written (nothing substituted)."""

    source: str  # file relative to the repository root
    location: str  # where in that file, e.g. "Commands table", "service worker"
    text: str  # as documented; the Commands table's may hold optional parts: [--seed S], [--a N | --b S]
    argv: tuple[str, ...]  # `text` split into arguments, optional parts in (their first alternative)
    #: The third-party image whose code runs the command; None when it is this repository's code
    #: (on the host, or in an image built from the Dockerfile).
    image: str | None = None
    #: The Dockerfile stage (build target) of the image it runs in, for images built from this repository.
    target: str | None = None
    env: tuple[tuple[str, str], ...] = ()  # literal environment of the container
    #: Environment taken from elsewhere (Kubernetes valueFrom): name -> its source, as JSON.
    env_refs: tuple[tuple[str, str], ...] = ()
    #: Files mounted into the container: container path -> host file (compose bind mounts).
    mounts: tuple[tuple[str, Path], ...] = ()
    #: Files projected into the container from the manifests: container path -> content (ConfigMaps).
    files: tuple[tuple[str, str], ...] = ()
    suffix: str = field(default="", compare=False)  # " #2" ... when an earlier command had the same key

    @property
    def name(self) -> str:
        """The program and its subcommand words, e.g. ``clickstream-worker dlq replay``."""
        words = [self.argv[0]] if self.argv else ["(nothing)"]
        for arg in self.argv[1:]:
            if not _SUBCOMMAND_WORD.fullmatch(arg):
                break
            words.append(arg)
        return " ".join(words)

    @property
    def key(self) -> str:
        return f"{self.source} | {self.location} | {self.name}{self.suffix}"

    def variants(self) -> list[list[str]]:
        """Every argument list the documented text allows (each optional part in or out); the
        ``[...]`` notation is the README's Commands table's (a shell line's brackets are literal)."""
        return expand_optional(self.text) if self.location == "Commands table" else [list(self.argv)]

    def mounted_file(self, container_path: str) -> str:
        """Content of a file the container sees at `container_path` (bind mount or ConfigMap)."""
        files = dict(self.files)
        if container_path in files:
            return files[container_path]
        mounts = dict(self.mounts)
        if container_path in mounts:
            return mounts[container_path].read_text(encoding="utf-8")
        raise KeyError(f"{self.key}: nothing is mounted at {container_path} (mounts: {sorted(mounts)}, "
                       f"files: {sorted(files)})")


# -- optional parts: [--seed S], [--events N | --duration S] --------------------------------


def _optional_groups(text: str) -> list[tuple[int, int, list[str]]]:
    """(start, end, alternatives) of each ``[...]`` group; nested groups are not supported."""
    groups = []
    for match in re.finditer(r"\[([^\[\]]*)\]", text):
        alternatives = [a.strip() for a in match.group(1).split(" | ")]
        groups.append((match.start(), match.end(), alternatives))
    leftover = re.sub(r"\[[^\[\]]*\]", "", text)
    if "[" in leftover or "]" in leftover:
        raise ValueError(f"unbalanced or nested [optional] part in documented command: {text!r}")
    return groups


def _fill(text: str, groups: list[tuple[int, int, list[str]]], choice: Sequence[str]) -> list[str]:
    out, position = [], 0
    for (start, end, _), chosen in zip(groups, choice, strict=True):
        out += [text[position:start], chosen]
        position = end
    out.append(text[position:])
    return shlex.split("".join(out))


def expand_optional(text: str) -> list[list[str]]:
    """All argument lists of `text`: each ``[a | b]`` group left out, or one of its alternatives."""
    groups = _optional_groups(text)
    options = [["", *alternatives] for _, _, alternatives in groups]
    return [_fill(text, groups, choice) for choice in itertools.product(*options)]


def full_form(text: str) -> list[str]:
    """`text` with every optional group in (its first alternative)."""
    groups = _optional_groups(text)
    return _fill(text, groups, [alternatives[0] for _, _, alternatives in groups])


# -- README.md -------------------------------------------------------------------------------


def readme_commands(path: Path = README) -> list[DocumentedCommand]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[DocumentedCommand] = []
    fence: str | None = None
    pending = ""
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = stripped[3:].strip().lower() if fence is None else None
            pending = ""
            continue
        if fence is None or fence not in SHELL_FENCES:
            continue
        command = pending + stripped.removeprefix("$ ")
        if command.endswith("\\"):  # continuation line
            pending = command[:-1] + " "
            continue
        pending = ""
        words = shlex.split(command, comments=True)
        if words:
            text = shlex.join(words)
            found.append(DocumentedCommand("README.md", "shell code block", text, tuple(words)))
    found += _commands_table(lines)
    return found


def _commands_table(lines: list[str]) -> list[DocumentedCommand]:
    try:
        start = next(i for i, line in enumerate(lines) if re.fullmatch(r"#+\s+Commands\s*", line.strip()))
    except StopIteration:
        return []
    found = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if not line.startswith("|") or re.fullmatch(r"[|\s:-]+", line):
            continue
        first_cell = re.split(r"(?<!\\)\|", line)[1]
        for span in re.findall(r"`([^`]+)`", first_cell):
            text = span.replace("\\|", "|").strip()
            words = text.split()
            if len(words) >= 2 and re.fullmatch(r"[a-z][\w.-]*", words[0]):
                found.append(DocumentedCommand("README.md", "Commands table", text, tuple(full_form(text))))
    return found


# -- Dockerfile ------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]]


def dockerfile_stages(path: Path = DOCKERFILE) -> list[Stage]:
    """Stages in order, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            base, _, name = re.sub(r"\s+as\s+", " AS ", rest.strip(), flags=re.IGNORECASE).partition(" AS ")
            stages.append(Stage(name.strip() or str(len(stages)), base.strip(), []))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


def _command_form(value: str) -> list[str]:
    """An exec-form JSON array, or a shell-form string (run by /bin/sh -c, as Docker does)."""
    if value.startswith("["):
        parsed = json.loads(value)
        if not (isinstance(parsed, list) and all(isinstance(a, str) for a in parsed)):
            raise ValueError(f"not an exec-form array of strings: {value}")
        return parsed
    return ["/bin/sh", "-c", value]


def image_command(target: str | None = None, path: Path = DOCKERFILE) -> tuple[list[str], list[str]]:
    """(ENTRYPOINT, CMD) of the image built for `target` (None: the last stage, Docker's default).

    Inherited through ``FROM <stage>``; setting ENTRYPOINT resets an inherited CMD, as in Docker.
    """
    stages = {s.name: s for s in dockerfile_stages(path)}
    stage = stages[target] if target is not None else list(stages.values())[-1]
    chain = [stage]
    while chain[0].base in stages:
        chain.insert(0, stages[chain[0].base])
    entrypoint: list[str] = []
    cmd: list[str] = []
    for keyword, rest in (i for s in chain for i in s.instructions):
        if keyword == "ENTRYPOINT":
            entrypoint, cmd = _command_form(rest), []
        elif keyword == "CMD":
            cmd = _command_form(rest)
    return entrypoint, cmd


def installed_extras(target: str, path: Path = DOCKERFILE) -> set[str]:
    """The project's extras installed in the image of `target` (``"clickstream-worker[msk]"``)."""
    stages = {s.name: s for s in dockerfile_stages(path)}
    chain = [stages[target]]
    while chain[0].base in stages:
        chain.insert(0, stages[chain[0].base])
    extras: set[str] = set()
    for keyword, rest in (i for s in chain for i in s.instructions):
        if keyword == "RUN":
            for match in re.finditer(r"clickstream-worker\[([\w,]+)\]", rest):
                extras |= set(match.group(1).split(","))
    return extras


def default_target(path: Path = DOCKERFILE) -> str:
    """The stage `docker build` builds without --target: the last one."""
    return dockerfile_stages(path)[-1].name


def image_targets(path: Path = DOCKERFILE) -> dict[str, str | None]:
    """Image name -> Dockerfile target, from the ``docker build ... -t NAME`` lines of its header."""
    targets: dict[str, str | None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"#\s*(docker build\b.*?)(?:\s+#.*)?$", line.strip())
        if not match:
            continue
        words = shlex.split(match.group(1))
        if "-t" in words:
            target = words[words.index("--target") + 1] if "--target" in words else None
            targets[words[words.index("-t") + 1].split(":")[0]] = target
    return targets


def dockerfile_commands(path: Path = DOCKERFILE) -> list[DocumentedCommand]:
    found = []
    for stage in dockerfile_stages(path):
        keywords = {keyword for keyword, _ in stage.instructions}
        if keywords & {"ENTRYPOINT", "CMD"}:
            entrypoint, cmd = image_command(stage.name, path)
            argv = [*entrypoint, *cmd]
            found.append(DocumentedCommand("Dockerfile", f"stage {stage.name}: ENTRYPOINT + CMD",
                                           shlex.join(argv), tuple(argv), target=stage.name))
        for keyword, rest in stage.instructions:
            if keyword != "HEALTHCHECK" or rest.upper() == "NONE":
                continue
            check = _command_form(re.split(r"(?:^|\s)CMD\s+", rest, maxsplit=1)[1].strip())
            found.append(DocumentedCommand("Dockerfile", f"stage {stage.name}: HEALTHCHECK",
                                           shlex.join(check), tuple(check), target=stage.name))
    return found


# -- docker-compose.yml ----------------------------------------------------------------------


def _unescape_dollars(value: Any) -> Any:
    """Compose interpolation: ``$$`` is a literal ``$`` (no other variable is used in the file)."""
    if isinstance(value, str):
        if re.search(r"\$\{?\w", value.replace("$$", "")):
            raise ValueError(f"compose variable interpolation is not supported here: {value!r}")
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [_unescape_dollars(v) for v in value]
    if isinstance(value, dict):
        return {k: _unescape_dollars(v) for k, v in value.items()}
    return value


def _words(value: str | list[str] | None) -> list[str] | None:
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def image_entrypoint_token(image: str) -> str:
    """Stands for a third-party image's own ENTRYPOINT (unknown here); the tag is left out of it so
    that a version bump does not change the command's key."""
    repository = re.sub(r"(:[\w.-]+)?(@sha256:[0-9a-f]+)?$", "", image)
    return f"<{repository} entrypoint>"


def compose_services(path: Path = COMPOSE_FILE) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = yaml.safe_load(path.read_text(encoding="utf-8"))["services"]
    return services


def _compose_env(service: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return tuple((str(k), str(v)) for k, v in _unescape_dollars(env).items())


def _compose_mounts(service: Mapping[str, Any], base: Path) -> tuple[tuple[str, Path], ...]:
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume.get("target", "")
        else:
            source, target = volume.split(":")[:2]
        if str(source).startswith(("./", "/", "../")):
            host = (base / source).resolve()
            if host.is_file():
                mounts.append((str(target), host))
    return tuple(mounts)


def compose_commands(path: Path = COMPOSE_FILE, dockerfile: Path = DOCKERFILE) -> list[DocumentedCommand]:
    found = []
    for name, service in compose_services(path).items():
        entrypoint = _words(_unescape_dollars(service.get("entrypoint")))
        command = _words(_unescape_dollars(service.get("command")))
        env, mounts = _compose_env(service), _compose_mounts(service, path.parent)
        image: str | None = None
        target: str | None = None
        if "build" in service:
            build = service["build"]
            target = (build.get("target") if isinstance(build, dict) else None) or default_target(dockerfile)
            image_entrypoint, image_cmd = image_command(target, dockerfile)
            if entrypoint is None:
                entrypoint = image_entrypoint
                command = image_cmd if command is None else command
            # Compose: an `entrypoint:` override drops the image's CMD.
            argv = [*entrypoint, *(command or [])]
        else:
            image = str(service.get("image"))
            head = entrypoint if entrypoint is not None else [image_entrypoint_token(image)]
            argv = [*head, *(command or [])]
        found.append(DocumentedCommand("docker-compose.yml", f"service {name}", shlex.join(argv), tuple(argv),
                                       image=image, target=target, env=env, mounts=mounts))
        check = service.get("healthcheck") or {}
        test = _unescape_dollars(check.get("test"))
        if test and not check.get("disable") and test != ["NONE"]:
            if isinstance(test, str):
                test = ["CMD-SHELL", test]
            argv = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
            found.append(DocumentedCommand("docker-compose.yml", f"service {name}: healthcheck", shlex.join(argv),
                                           tuple(argv), image=image, target=target, env=env, mounts=mounts))
    return found


# -- deploy/kubernetes/*.yaml ----------------------------------------------------------------


def kubernetes_objects(directory: Path = KUBERNETES_DIR) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                yield path, doc


def _pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"}:
        return spec.get("template", {}).get("spec")
    return None


def _configmap_files(container: Mapping[str, Any], pod: Mapping[str, Any],
                     configmaps: Mapping[str, Mapping[str, str]]) -> tuple[tuple[str, str], ...]:
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files = []
    for mount in container.get("volumeMounts", []):
        source = volumes.get(mount["name"], {}).get("configMap")
        if source is None:
            continue
        data = configmaps.get(source["name"], {})
        items = {i["key"]: i["path"] for i in source.get("items", [])} or {k: k for k in data}
        for key, relative in items.items():
            if mount.get("subPath"):
                if mount["subPath"] == relative:
                    files.append((mount["mountPath"], data[key]))
            else:
                files.append((f"{mount['mountPath'].rstrip('/')}/{relative}", data[key]))
    return tuple(files)


def kubernetes_commands(directory: Path = KUBERNETES_DIR, dockerfile: Path = DOCKERFILE) -> list[DocumentedCommand]:
    objects = list(kubernetes_objects(directory))
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for _, o in objects if o.get("kind") == "ConfigMap"}
    ours = image_targets(dockerfile)
    found = []
    for path, obj in objects:
        pod = _pod_spec(obj)
        if pod is None:
            continue
        for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            image_name = str(container["image"]).rsplit("/", 1)[-1].split(":")[0].split("@")[0]
            command, args = _words(container.get("command")), _words(container.get("args"))
            target = (ours[image_name] or default_target(dockerfile)) if image_name in ours else None
            image = None if target is not None else str(container["image"])
            if command is None:
                if target is not None:
                    image_entrypoint, image_cmd = image_command(target, dockerfile)
                    command, args = image_entrypoint, image_cmd if args is None else args
                else:
                    command = [image_entrypoint_token(str(image))]
            argv = [*command, *(args or [])]
            env = tuple((e["name"], str(e["value"])) for e in container.get("env", []) if "value" in e)
            refs = tuple((e["name"], json.dumps(e["valueFrom"], sort_keys=True))
                         for e in container.get("env", []) if "valueFrom" in e)
            location = f"{obj['kind']} {obj['metadata']['name']}: container {container['name']}"
            found.append(DocumentedCommand(
                str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name, location,
                shlex.join(argv), tuple(argv), image=image, target=target, env=env, env_refs=refs,
                files=_configmap_files(container, pod, configmaps),
            ))
    return found


# -- all of them -----------------------------------------------------------------------------


def documented_commands() -> list[DocumentedCommand]:
    """Every documented command; a repeated key gets a " #2", " #3" ... suffix."""
    seen: dict[str, int] = {}
    result = []
    for found in [*readme_commands(), *dockerfile_commands(), *compose_commands(), *kubernetes_commands()]:
        seen[found.key] = seen.get(found.key, 0) + 1
        repeat = seen[found.key]
        result.append(dataclasses.replace(found, suffix=f" #{repeat}") if repeat > 1 else found)
    return result


def documented(key: str) -> DocumentedCommand:
    """The documented command with this key; a clear failure when the files no longer have it."""
    commands = {c.key: c for c in documented_commands()}
    if key not in commands:
        known = "\n  ".join(sorted(commands))
        raise LookupError(f"no documented command {key!r} any more; the files document:\n  {known}")
    return commands[key]

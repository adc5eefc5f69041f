"""The Prometheus rules and config under deploy/prometheus, checked by the real promtool.

`promtool check rules` parses every expression and template, `promtool test rules` runs
deploy/prometheus/alerts_test.yml (input series and the alerts expected to fire or not), and
`promtool check config` validates prometheus.yml with its rule files. promtool comes with the
Debian package `prometheus` (`.ci/run` installs it). Without it these tests skip, except when
the environment variable CI is set: CI must not pass because a tool is missing.
(tests/integration/test_packaging.py checks, without promtool, that the rules name only exported metrics.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "alerts_test.yml"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
COMPOSE_FILE = ROOT / "docker-compose.yml"

INSTALL_HINT = "apt-get install --no-install-recommends prometheus (Debian/Ubuntu; it provides /usr/bin/promtool)"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def find_promtool() -> str:
    """promtool's path; skip without it, but fail in CI. (Called by each test rather than a
    fixture, so that CI reports the tests as failed, not as errors in setup.)"""
    path = shutil.which("promtool")
    if path is None:
        message = f"promtool is not on PATH: {INSTALL_HINT}"
        if in_ci():
            pytest.fail(f"{message}. CI is set, so this does not skip.", pytrace=False)
        pytest.skip(message)
    return path


def run_promtool(*args: str) -> str:
    """Run promtool; on a non-zero exit fail with its whole output."""
    command = [find_promtool(), *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"`{' '.join(command)}` exited with {proc.returncode}:\n{output}", pytrace=False)
    return output


def alert_names() -> list[str]:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def rule_test_cases() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    return [case for test in doc["tests"] for case in test.get("alert_rule_test", [])]


def test_rule_tests_cover_every_alert_firing_and_not_firing() -> None:
    doc = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    assert [(RULE_TESTS.parent / f).resolve() for f in doc["rule_files"]] == [RULES.resolve()]
    names = alert_names()
    assert len(names) == len(set(names)), "duplicate alert names"
    cases = rule_test_cases()
    unknown = {c["alertname"] for c in cases} - set(names)
    assert not unknown, f"alerts_test.yml tests alerts that alerts.yml lacks: {sorted(unknown)}"
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert not set(names) - firing, f"no case where these fire: {sorted(set(names) - firing)}"
    assert not set(names) - quiet, f"no case where these stay quiet: {sorted(set(names) - quiet)}"


def test_promtool_check_rules() -> None:
    output = run_promtool("check", "rules", "--lint-fatal", str(RULES))
    assert f"{len(alert_names())} rules found" in output, output


def test_promtool_test_rules() -> None:
    output = run_promtool("test", "rules", str(RULE_TESTS))
    assert "SUCCESS" in output, output


def test_promtool_check_config(tmp_path: Path) -> None:
    """prometheus.yml names its rule files by their path in the container (docker-compose.yml
    mounts them): check a copy whose rule_files point at the files in this repository."""
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    volumes = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]["prometheus"]["volumes"]
    mounts = {}
    for volume in volumes:
        source, target = volume.split(":")[:2]
        if source.startswith(("./", "/")):
            mounts[target] = (ROOT / source).resolve()
    resolved = []
    for rule_file in config.get("rule_files", []):
        host = mounts.get(rule_file)
        assert host is not None and host.is_file(), f"rule file {rule_file} is not mounted from this repository"
        resolved.append(str(host))
    assert RULES.resolve() in {Path(p) for p in resolved}
    config["rule_files"] = resolved
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    output = run_promtool("check", "config", "--lint-fatal", str(copy))
    assert "SUCCESS" in output and str(RULES.resolve()) in output, output

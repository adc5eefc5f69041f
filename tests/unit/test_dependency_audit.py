"""`make audit` never reports a clean result it did not obtain."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "dependency_audit.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dependency_audit", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_advisory_database_is_not_audited(capsys: pytest.CaptureFixture[str]) -> None:
    port = _closed_port()
    code = _module().main([], pypi_url=f"http://127.0.0.1:{port}/pypi/pip/json",
                          osv_url=f"http://127.0.0.1:{port}/v1/query")
    err = capsys.readouterr().err
    assert code == 3
    assert "NOT AUDITED" in err and "no vulnerability database is reachable" in err
    assert "No known vulnerabilities" not in err


@pytest.mark.parametrize(("report", "code", "says"), [
    ({"dependencies": [{"name": "a", "version": "1", "vulns": []}]}, 0, "no known vulnerabilities"),
    ({"dependencies": [{"name": "a", "version": "1", "vulns": [{"id": "GHSA-1", "fix_versions": ["2"]}]}]}, 1,
     "known vulnerabilities"),
    ({"dependencies": [{"name": "a", "version": "1", "vulns": []},
                       {"name": "b", "skip_reason": "Dependency not found on PyPI"}]}, 3, "NOT AUDITED"),
    ({"dependencies": []}, 3, "NOT AUDITED"),
])
def test_the_verdict_follows_the_report(report: dict[str, Any], code: int, says: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert _module().judge(report) == code
    captured = capsys.readouterr()
    assert says in captured.err
    if code == 1:
        assert "GHSA-1 (fixed in 2)" in captured.out

"""`make audit`: check the container image's locked runtime set against an advisory database.

Runs pip-audit on deploy/docker/constraints.txt (exactly what the images install) with
``--strict``, after checking that an advisory database answers at all. Without that check,
pip-audit offline prints "No known vulnerabilities found" while it audited nothing (every
package "not found on PyPI"): this script says NOT AUDITED and exits 3 instead.

Exit codes: 0 audited, nothing found; 1 vulnerabilities found (pip-audit's report);
3 the advisory database could not be reached or some package could not be audited.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "deploy" / "docker" / "constraints.txt"
#: A package every install has, asked for the shape pip-audit's "pypi" service reads.
PYPI_PROBE = "https://pypi.org/pypi/pip/json"
OSV_PROBE = "https://api.osv.dev/v1/query"
EXIT_NOT_AUDITED = 3


def probe_pypi(url: str = PYPI_PROBE, timeout_s: float = 10.0) -> str | None:
    """None when PyPI's JSON API answers with vulnerability data, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - a fixed https URL
            data = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return f"{url}: HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{url}: {exc}"
    return None if isinstance(data, dict) and "vulnerabilities" in data else f"{url}: no vulnerability data"


def probe_osv(url: str = OSV_PROBE, timeout_s: float = 10.0) -> str | None:
    """None when the OSV API answers a query, else why not."""
    body = json.dumps({"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "20.0"}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - a fixed https URL
            json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return f"{url}: HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{url}: {exc}"
    return None


def main(argv: list[str] | None = None, *, pypi_url: str = PYPI_PROBE, osv_url: str = OSV_PROBE) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requirements", type=Path, default=CONSTRAINTS, help="pinned set to audit")
    args = parser.parse_args(argv)
    failures = {"pypi": probe_pypi(pypi_url), "osv": probe_osv(osv_url)}
    service = next((name for name, why in failures.items() if why is None), None)
    if service is None:
        print("NOT AUDITED: no vulnerability database is reachable from here ("
              + "; ".join(f"{name}: {why}" for name, why in failures.items())
              + "). This is not a clean result: run `make audit` where PyPI's JSON API or api.osv.dev "
              "answers (CI with internet, a workstation).", file=sys.stderr)
        return EXIT_NOT_AUDITED
    shown = args.requirements.relative_to(ROOT) if args.requirements.is_relative_to(ROOT) else args.requirements
    print(f"auditing {shown} with pip-audit against {service}", file=sys.stderr)
    command = [sys.executable, "-m", "pip_audit", "--requirement", str(args.requirements), "--no-deps",
               "--disable-pip", "--vulnerability-service", service, "--progress-spinner", "off", "--format", "json"]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        print(result.stderr, file=sys.stderr)
        print("NOT AUDITED: pip-audit gave no report", file=sys.stderr)
        return EXIT_NOT_AUDITED
    return judge(report)


def judge(report: dict[str, object]) -> int:
    """Print pip-audit's JSON report as a verdict; the exit code as in the module docstring."""
    dependencies = report.get("dependencies")
    if not isinstance(dependencies, list) or not dependencies:
        print("NOT AUDITED: the report lists no dependencies", file=sys.stderr)
        return EXIT_NOT_AUDITED
    skipped = [d for d in dependencies if d.get("skip_reason")]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(f"{dep['name']} {dep['version']}: {vuln.get('id')} (fixed in {fixed})")
    if skipped:
        for dep in skipped:
            print(f"not audited: {dep['name']} {dep.get('version', '')}: {dep['skip_reason']}", file=sys.stderr)
        print(f"NOT AUDITED: {len(skipped)} of {len(dependencies)} packages could not be checked", file=sys.stderr)
        return EXIT_NOT_AUDITED
    if vulnerable:
        print(f"{len(vulnerable)} of {len(dependencies)} packages have known vulnerabilities", file=sys.stderr)
        return 1
    print(f"audited {len(dependencies)} packages: no known vulnerabilities", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

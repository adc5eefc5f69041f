"""Test helpers shared by fixtures and tests (re-exported from the worker's local stack).

Kept out of conftest.py so tests and benchmarks can import them by name.
Every process started here is stopped by PID (never by name).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from pathlib import Path
from typing import Any

from clickstream_devkit.personalize.process import LocalPersonalize, LocalPersonalizeError
from clickstream_devkit.processes import free_port, pid_exists, stop_process
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Planted in the user IDs of the integration and fault scenarios' events (valid and
#: malformed). With redaction on (the default) it must never appear in a worker's log:
#: tests/conftest.py greps every worker log a test produced (`WORKER_LOGS`).
SENTINEL_USER = "SENTINEL-pii-7f3a"

#: Log files of the worker processes started in this session, in start order.
WORKER_LOGS: list[Path] = []

#: Consumer settings that make group joins on Tansu take ~3 s instead of ~20 s.
TANSU_CONSUMER_SETTINGS: dict[str, int] = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    "max_poll_interval_ms": 10000,
}

__all__ = [
    "REPO_ROOT",
    "SENTINEL_USER",
    "TANSU_CONSUMER_SETTINGS",
    "WORKER_LOGS",
    "LocalPersonalize",
    "LocalPersonalizeError",
    "free_port",
    "make_certificates",
    "pid_exists",
    "stop_process",
]


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clickstream test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


#: Where tests leave what a reader may want (tables, measurements): files, never stdout.
TEST_RESULTS = REPO_ROOT / "build" / "test-results"


def write_result(name: str, data: Any) -> Path:
    """`data` as JSON in build/test-results/`name`.json; returns the path."""
    TEST_RESULTS.mkdir(parents=True, exist_ok=True)
    path = TEST_RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path

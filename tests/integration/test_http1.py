"""`worker.ingest.http1.Http1Pool` against real loopback servers (plain TCP and TLS).

The servers are raw asyncio stream servers so each test can misbehave exactly as a real
server or load balancer does: close idle keep-alive connections, answer in chunks, send
``Connection: close``, stall, send garbage, send too much.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.helpers import make_certificates
from worker.ingest.http1 import Http1Pool, ProtocolError

pytestmark = pytest.mark.integration

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


class Server:
    """A loopback server that records connections and requests."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.connections = 0
        self.open_now = 0
        self.max_open = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request (head + Content-Length body), or None at EOF."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        return body


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def request(body: bytes = b'{"a":1}') -> bytes:
    return b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def pool(port: int, **kwargs: object) -> Http1Pool:
    settings: dict[str, object] = {"host": "127.0.0.1", "port": port, "ssl_context": None, "max_connections": 4,
                                   "connect_timeout_s": 2.0, "response_timeout_s": 2.0}
    settings.update(kwargs)
    return Http1Pool(**settings)  # type: ignore[arg-type]


async def echo_keepalive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
    while (body := await server.read_request(reader)) is not None:
        writer.write(ok(b"echo:" + body, b"x-amzn-RequestId: r-1\r\n"))
        await writer.drain()


def test_keep_alive_reuses_connections_and_returns_status_headers_body() -> None:
    async def main() -> None:
        async with Server(echo_keepalive) as server:
            http = pool(server.port, max_connections=2)
            for i in range(20):
                response = await http.send(request(b"%d" % i))
                assert (response.status, response.body) == (200, b"echo:%d" % i)
                assert response.headers["x-amzn-requestid"] == "r-1"  # names are lower-case
            await http.close()
            assert server.connections == 1, "sequential requests must share one keep-alive connection"

    asyncio.run(main())


def test_concurrency_never_exceeds_max_connections() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while (body := await server.read_request(reader)) is not None:
            await asyncio.sleep(0.02)
            writer.write(ok(body))
            await writer.drain()

    async def main() -> None:
        async with Server(slow) as server:
            http = pool(server.port, max_connections=3)
            bodies = [b"%d" % i for i in range(30)]
            responses = await asyncio.gather(*(http.send(request(b)) for b in bodies))
            assert [r.body for r in responses] == bodies
            assert server.max_open <= 3
            assert server.connections == 3
            await http.close()

    asyncio.run(main())


def test_chunked_and_split_responses_are_reassembled() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while await server.read_request(reader) is not None:
            payload = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            for i in range(0, len(payload), 7):  # dribbled over many packets
                writer.write(payload[i:i + 7])
                await writer.drain()
                await asyncio.sleep(0)

    async def main() -> None:
        async with Server(chunked) as server:
            http = pool(server.port)
            for _ in range(3):
                assert (await http.send(request())).body == b"hello world"
            assert server.connections == 1
            await http.close()

    asyncio.run(main())


def test_connection_close_answer_is_not_reused() -> None:
    async def close_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        body = await server.read_request(reader)
        writer.write(ok(body or b"", b"Connection: close\r\n"))
        await writer.drain()

    async def main() -> None:
        async with Server(close_each) as server:
            http = pool(server.port)
            for _ in range(5):
                assert (await http.send(request())).status == 200
            assert server.connections == 5
            assert len(server.requests) == 5
            await http.close()

    asyncio.run(main())


def test_idle_connection_closed_by_the_server_is_replaced_without_losing_the_request() -> None:
    """A load balancer's idle timeout racing our next request: resend it once on a new connection."""

    async def one_then_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        body = await server.read_request(reader)
        writer.write(ok(body or b""))  # keep-alive promised (no Connection: close) ...
        await writer.drain()
        await reader.read(1)  # ... but the next request meets a connection the server already gave up on
        # closed without reading or answering it (the request is not recorded: never processed)

    async def main() -> None:
        async with Server(one_then_drop) as server:
            http = pool(server.port, max_connections=1)
            for i in range(6):
                response = await http.send(request(b"%d" % i))
                assert response.body == b"%d" % i
            assert len(server.requests) == 6, "every request was processed exactly once"
            assert server.connections == 6, "each reuse met a dropped connection and was resent on a new one"
            await http.close()

    asyncio.run(main())


def test_failure_after_a_response_started_is_not_resent() -> None:
    """Once response bytes arrived the server saw the request: resending could duplicate it."""

    async def half_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        body = await server.read_request(reader)
        writer.write(ok(body or b""))  # the first request on the connection is answered in full
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()

    async def main() -> None:
        async with Server(half_answer) as server:
            http = pool(server.port)
            await http.send(request())
            with pytest.raises(ConnectionResetError, match="before the response ended"):
                await http.send(request())  # on the reused connection
            assert len(server.requests) == 2
            assert server.connections == 1
            await http.close()

    asyncio.run(main())


def test_response_timeout_discards_the_connection_and_the_pool_recovers() -> None:
    calls = {"n": 0}

    async def first_stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while (body := await server.read_request(reader)) is not None:
            calls["n"] += 1
            if calls["n"] == 1:
                await asyncio.sleep(1.0)
            writer.write(ok(body))
            await writer.drain()

    async def main() -> None:
        async with Server(first_stalls) as server:
            http = pool(server.port, response_timeout_s=0.2)
            with pytest.raises(TimeoutError, match=r"no complete response within 0\.2 s"):
                await http.send(request(b"slow"))
            assert (await http.send(request(b"fast"))).body == b"fast"
            assert server.connections == 2, "the timed-out connection must not be reused"
            assert http.open_connections == 1, "the timed-out connection must be closed"
            await http.close()

    asyncio.run(main())


def test_refused_connection_is_a_connection_error() -> None:
    async def main() -> None:
        async with Server(echo_keepalive) as server:
            port = server.port
        http = pool(port)  # nobody listens any more
        with pytest.raises(ConnectionRefusedError):
            await http.send(request())
        await http.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", "invalid HTTP response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000, "exceeds 1024 bytes"),
    ],
    ids=["garbage", "too-large"],
)
def test_bad_answers_are_protocol_errors(answer: bytes, message: str) -> None:
    async def bad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(0.5)

    async def main() -> None:
        async with Server(bad) as server:
            http = pool(server.port, max_response_bytes=1024)
            with pytest.raises(ProtocolError, match=message):
                await http.send(request())
            await http.close()

    asyncio.run(main())


def test_interim_100_continue_is_skipped() -> None:
    async def interim(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while (body := await server.read_request(reader)) is not None:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(body))
            await writer.drain()

    async def main() -> None:
        async with Server(interim) as server:
            http = pool(server.port)
            response = await http.send(request(b"x"))
            assert (response.status, response.body) == (200, b"x")
            await http.close()

    asyncio.run(main())


def test_cancelled_request_closes_its_connection() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while (body := await server.read_request(reader)) is not None:
            if body == b"stall":
                await reader.read(1)  # never answers; returns when the client closes
                return
            writer.write(ok(body))
            await writer.drain()

    async def main() -> None:
        async with Server(stall) as server:
            http = pool(server.port, max_connections=1)
            task = asyncio.create_task(http.send(request(b"stall")))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.1)
            assert server.open_now == 0, "the cancelled request's connection must be closed, not leaked"
            # A late answer on that connection must never be read as the next response.
            assert (await http.send(request(b"next"))).body == b"next"
            assert server.connections == 2
            await http.close()

    asyncio.run(main())


def test_tls_verifies_the_server_certificate(tmp_path: Path) -> None:
    ca, cert, key = make_certificates(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _, _ = make_certificates(other)

    async def main() -> None:
        async with Server(echo_keepalive, server_context) as server:
            trusted = pool(server.port, host="localhost", ssl_context=ssl.create_default_context(cafile=str(ca)))
            assert (await trusted.send(request(b"tls"))).body == b"echo:tls"
            await trusted.close()
            untrusted = pool(server.port, host="localhost",
                             ssl_context=ssl.create_default_context(cafile=str(other_ca)))
            with pytest.raises(ssl.SSLCertVerificationError):
                await untrusted.send(request())
            await untrusted.close()

    asyncio.run(main())


def test_closed_pool_refuses_requests() -> None:
    async def main() -> None:
        async with Server(echo_keepalive) as server:
            http = pool(server.port)
            await http.send(request())
            await http.close()
            assert http.open_connections == 0
            with pytest.raises(ConnectionAbortedError):
                await http.send(request())

    asyncio.run(main())

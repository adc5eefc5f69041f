"""`worker.ingest.http_transport.AiohttpTransport` against real loopback servers (plain TCP and TLS).

The servers are raw asyncio stream servers so each test can misbehave exactly as a real
server, a load balancer or anything in the middle does: close idle keep-alive connections,
answer in chunks, send ``Connection: close``, stall, send garbage, send too much, send a
response nobody asked for, send an endless header block.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import make_certificates
from worker.ingest.http_transport import AiohttpTransport, InvalidHeaderValueError

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


HEADERS = {"Content-Type": "application/json", "X-Amz-Date": "20261206T120000Z"}


class Http:
    """An AiohttpTransport for a test, with the old pool's one-call shape."""

    def __init__(self, port: int, **kwargs: object) -> None:
        host = str(kwargs.pop("host", "127.0.0.1"))
        ssl_context = kwargs.pop("ssl_context", None)
        scheme = "https" if ssl_context is not None else "http"
        settings: dict[str, object] = {"ssl_context": ssl_context, "max_connections": 4, "connect_timeout_s": 2.0,
                                       "response_timeout_s": 2.0}
        settings.update(kwargs)
        self.transport = AiohttpTransport(f"{scheme}://{host}:{port}", **settings)  # type: ignore[arg-type]
        self.started = False

    async def send(self, body: bytes = b'{"a":1}', headers: dict[str, str] | None = None) -> Any:
        if not self.started:
            await self.transport.start()
            self.started = True
        return await self.transport.post("/events", headers or HEADERS, body)

    async def close(self) -> None:
        await self.transport.close()


def pool(port: int, **kwargs: object) -> Http:
    return Http(port, **kwargs)


async def echo_keepalive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
    while (body := await server.read_request(reader)) is not None:
        writer.write(ok(b"echo:" + body, b"x-amzn-RequestId: r-1\r\n"))
        await writer.drain()


def test_keep_alive_reuses_connections_and_returns_status_headers_body() -> None:
    async def main() -> None:
        async with Server(echo_keepalive) as server:
            http = pool(server.port, max_connections=2)
            for i in range(20):
                response = await http.send(b"%d" % i)
                assert (response.status, response.body) == (200, b"echo:%d" % i)
                assert response.headers == {}  # a success needs no headers: they are not copied
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
            responses = await asyncio.gather(*(http.send(b) for b in bodies))
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
                assert (await http.send()).body == b"hello world"
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
                assert (await http.send()).status == 200
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
                response = await http.send(b"%d" % i)
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
            await http.send()
            with pytest.raises(ConnectionError):
                await http.send()  # on the reused connection
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
                await http.send(b"slow")
            assert (await http.send(b"fast")).body == b"fast"
            assert server.connections == 2, "the timed-out connection must not be reused"
            await http.close()

    asyncio.run(main())


def test_refused_connection_is_a_connection_error() -> None:
    async def main() -> None:
        async with Server(echo_keepalive) as server:
            port = server.port
        http = pool(port)  # nobody listens any more
        with pytest.raises(ConnectionError, match=r"(?i)connect"):
            await http.send()
        await http.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", "(?i)invalid|bad status|BadStatus|Expected HTTP"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000, "exceeds 1024"),
    ],
    ids=["garbage", "too-large"],
)
def test_bad_answers_are_connection_errors(answer: bytes, message: str) -> None:
    async def bad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(0.5)

    async def main() -> None:
        async with Server(bad) as server:
            http = pool(server.port, max_response_bytes=1024)
            with pytest.raises(ConnectionError, match=message):
                await http.send()
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
            response = await http.send(b"x")
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
            task = asyncio.create_task(http.send(b"stall"))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.1)
            assert server.open_now == 0, "the cancelled request's connection must be closed, not leaked"
            # A late answer on that connection must never be read as the next response.
            assert (await http.send(b"next")).body == b"next"
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
            assert (await trusted.send(b"tls")).body == b"echo:tls"
            await trusted.close()
            untrusted = pool(server.port, host="localhost",
                             ssl_context=ssl.create_default_context(cafile=str(other_ca)))
            with pytest.raises(ConnectionError, match=r"(?i)certificate verify failed"):
                await untrusted.send()
            await untrusted.close()

    asyncio.run(main())


def test_closed_pool_refuses_requests() -> None:
    async def main() -> None:
        async with Server(echo_keepalive) as server:
            http = pool(server.port)
            await http.send()
            await http.close()
            with pytest.raises(ConnectionAbortedError):
                await http.send()

    asyncio.run(main())


# -- a peer that misbehaves on purpose -----------------------------------------------------------


@pytest.mark.parametrize("delay_s", [0.0, 0.05], ids=["same-read", "while-idle"])
def test_a_response_nobody_asked_for_is_never_read_as_the_next_answer(delay_s: float) -> None:
    """The old pool read bytes trailing a complete response as the next response: a call whose
    real answer was 403 came back as 200. Here the forged response is never anyone's answer."""

    forged = {"sent": False}

    async def forger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while (body := await server.read_request(reader)) is not None:
            if not forged["sent"]:
                writer.write(ok(body))
                await writer.drain()
                await asyncio.sleep(delay_s)
                writer.write(ok(b"forged-200"))  # unsolicited, once
                forged["sent"] = True
            else:
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\ndenied")
            await writer.drain()

    async def main() -> None:
        async with Server(forger) as server:
            http = pool(server.port, max_connections=1)
            assert (await http.send(b"1")).body == b"1"
            for _ in range(3):
                await asyncio.sleep(0.1)  # the forged bytes reach the idle connection meanwhile
                response = await http.send(b"2")
                assert (response.status, response.body) == (403, b"denied"), response
            assert server.connections == 2, "the connection that carried unrequested bytes was reused"
            await http.close()

    asyncio.run(main())


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nX-Endless: " + b"a" * 400_000,  # one header that never ends
    b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(5000)),  # too many headers
], ids=["endless-header", "many-headers"])
def test_an_oversized_header_block_is_refused_quickly_and_bounded(head: bytes) -> None:
    """The old pool held 342 MiB of one endless header until the timeout: heads are bounded now."""

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(head)
        await writer.drain()
        await asyncio.sleep(5)  # keep the connection open: the client must give up on its own

    async def main() -> None:
        async with Server(flood) as server:
            http = pool(server.port, response_timeout_s=10.0)
            loop = asyncio.get_running_loop()
            began = loop.time()
            with pytest.raises(ConnectionError):
                await http.send()
            assert loop.time() - began < 2.0, "refused on the limit, not on the timeout"
            await http.close()

    asyncio.run(main())


@pytest.mark.parametrize("value", ["tok\r\nX-Injected: 1", "tok\nX-Injected: 1", "tok\rX-Injected: 1", "tok\0"])
def test_a_header_value_with_a_line_break_or_nul_is_never_sent(value: str) -> None:
    """The old check removed CRLF pairs before looking, so `tok\\r\\nX-Injected: 1` became a header."""

    async def main() -> None:
        async with Server(echo_keepalive) as server:
            http = pool(server.port)
            with pytest.raises(InvalidHeaderValueError, match="X-Amz-Security-Token"):
                await http.send(headers={**HEADERS, "X-Amz-Security-Token": value})
            with pytest.raises(InvalidHeaderValueError):
                await http.send(headers={**HEADERS, f"X-Bad{value}": "v"})
            assert server.requests == [], "nothing may reach the wire"
            assert (await http.send(b"fine")).body == b"echo:fine"
            await http.close()

    asyncio.run(main())


def test_error_answers_carry_their_headers_lower_cased() -> None:
    async def denied(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while await server.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nX-Amzn-ErrorType: InvalidInputException\r\n"
                         b"x-amzn-RequestId: r-2\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    async def main() -> None:
        async with Server(denied) as server:
            http = pool(server.port)
            response = await http.send()
            assert response.status == 400
            assert response.headers["x-amzn-errortype"] == "InvalidInputException"
            assert response.headers["x-amzn-requestid"] == "r-2"
            await http.close()

    asyncio.run(main())

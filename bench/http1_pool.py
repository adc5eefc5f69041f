"""The lean client's former hand-written HTTP/1.1 pool: a MEASURED BASELINE only, not shipped.

Until the security review, `worker.ingest.http1` (asyncio + httptools) carried the lean
client's requests. It was replaced by aiohttp's maintained pool (`worker.ingest.http_transport`)
because of protocol bugs that review found: bytes trailing a complete response were parsed as
the next response, header-injection checks removed CRLF pairs before looking, response heads
had no size limit. It lives on here, unchanged apart from `Http1Transport` at the end, so that
`make bench` can compare the new client with the old one in the same run
(`bench.worker_variant --transport http1`). Never use it for real traffic.

Original notes follow.

A small HTTP/1.1 keep-alive connection pool for the lean client (asyncio + httptools).

Why not aiohttp: the lean client sends one request shape, a POST whose head and body are
already built and signed, and at full load it sends several thousand per second from one
event loop. Measured on the bench machine against the local Personalize (client CPU per
PutEvents call, request building and signing included): 120 µs through
``aiohttp.ClientSession.post`` (request and response objects, header multidicts, tracing
hooks, cookie handling, per-request timers) and 44 µs through this pool; `bench.micro`, which
times the POST alone at concurrency 64, gives 100 and 62 µs. At five events per call that is
8 to 15 µs per event, a fifth to a third of the worker's CPU at the time. Parsing is llhttp (the
parser aiohttp and uvicorn use) through `httptools`; only connection handling is ours:

- at most `max_connections` connections, one request in flight on each, idle ones reused
  last-in first-out and dropped when the server closes them or answers ``Connection: close``;
- a connect timeout and a response timeout (send → complete response);
- a request on a *reused* connection that fails before any response byte arrives is sent
  once more on a new connection: the server closed the idle connection while we wrote,
  so it never saw the request (what urllib3 and aiohttp do too);
- a cancelled or failed request closes its connection (its state is unknown);
- bodies delimited by Content-Length or chunked; responses larger than
  `max_response_bytes` are refused (Personalize answers a few hundred bytes).

Every failure is an `OSError` (`ConnectionError` or `TimeoutError`), which the sender
classifies as a network error: retried with backoff until the delivery deadline.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import cast

import httptools

#: Responses above this are refused: a PutEvents answer is a few hundred bytes.
MAX_RESPONSE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Response:
    """A complete response; header names are lower-case."""

    status: int
    headers: dict[str, str]
    body: bytes


class ProtocolError(ConnectionError):
    """The server's bytes are not a valid HTTP/1.1 response (or are not wanted now)."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one request at a time."""

    def __init__(self, max_response_bytes: int) -> None:
        self._max = max_response_bytes
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self.received_any = False
        self.usable = True

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        reason = f": {exc}" if exc else ""
        self._fail(ConnectionResetError(f"connection closed by the server before the response ended{reason}"))

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        if self._waiter is None:
            self.close()  # bytes nobody asked for: the connection cannot be trusted any more
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"invalid HTTP response: {exc}"))
            self.close()

    # -- httptools callbacks -----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max:
            self._fail(ProtocolError(f"response body exceeds {self._max} bytes"))
            self.close()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self._headers, self._body, self._size = {}, [], 0
            return
        if not self._parser.should_keep_alive():
            self.usable = False
            self.close()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(status, self._headers, b"".join(self._body)))

    # -- use ---------------------------------------------------------------------------------
    async def request(self, payload: bytes, timeout_s: float) -> Response:
        """Send `payload` (head and body) and wait for the complete response."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("connection already closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        self._waiter = waiter
        self._headers, self._body, self._size = {}, [], 0
        self.received_any = False
        timer = loop.call_later(timeout_s, self._time_out, waiter, timeout_s)
        try:
            transport.write(payload)
            return await waiter
        except BaseException:
            self.usable = False  # cancelled or failed mid-exchange: the stream position is unknown
            self.abort()
            raise
        finally:
            timer.cancel()
            self._waiter = None

    def _time_out(self, waiter: asyncio.Future[Response], timeout_s: float) -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError(f"no complete response within {timeout_s:g} s"))

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def idle_and_open(self) -> bool:
        return self.usable and self._transport is not None and not self._transport.is_closing()

    def close(self) -> None:
        self.usable = False
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        self.usable = False
        if self._transport is not None:
            self._transport.abort()


class Http1Pool:
    """Keep-alive connections to one origin; safe for many concurrent requests on one loop."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        max_connections: int,
        connect_timeout_s: float,
        response_timeout_s: float,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._connect_timeout_s = connect_timeout_s
        self._response_timeout_s = response_timeout_s
        self._max_response_bytes = max_response_bytes
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._closed = False

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def send(self, payload: bytes) -> Response:
        """Send one request (`payload` = head + body) and return its response."""
        async with self._slots:
            if self._closed:
                raise ConnectionAbortedError("the HTTP pool is closed")
            conn = self._take_idle()
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            try:
                response = await conn.request(payload, self._response_timeout_s)
            except ConnectionError:
                self._open.discard(conn)
                if not (reused and not conn.received_any):
                    raise
                conn = await self._connect()  # the server had closed the idle connection: resend once
                try:
                    response = await conn.request(payload, self._response_timeout_s)
                except BaseException:
                    self._open.discard(conn)
                    raise
            except BaseException:
                self._open.discard(conn)
                raise
            if conn.usable:
                self._idle.append(conn)
            else:
                self._open.discard(conn)
            return response

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.idle_and_open():
                return conn
            self._open.discard(conn)
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        max_bytes = self._max_response_bytes
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(max_bytes), self._host, self._port, ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
        except TimeoutError:
            raise TimeoutError(
                f"could not connect to {self._host}:{self._port} within {self._connect_timeout_s:g} s"
            ) from None
        self._open.add(conn)
        return conn

    async def close(self) -> None:
        """Close every connection; requests still running fail with ConnectionError."""
        self._closed = True
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks


class Http1Transport:
    """The old pool behind the lean client's transport interface (bench variant only)."""

    def __init__(self, base_url: str, *, ssl_context: ssl.SSLContext | None, max_connections: int,
                 connect_timeout_s: float, response_timeout_s: float) -> None:
        from urllib.parse import urlsplit  # noqa: PLC0415

        parts = urlsplit(base_url)
        self._pool = Http1Pool(host=parts.hostname or "127.0.0.1", port=parts.port or (443 if ssl_context else 80),
                               ssl_context=ssl_context, max_connections=max_connections,
                               connect_timeout_s=connect_timeout_s, response_timeout_s=response_timeout_s)

    async def start(self) -> None:
        pass

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> Response:
        fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items() if name.lower() != "host")
        head = f"POST {path} HTTP/1.1\r\nHost: {headers['Host']}\r\nContent-Length: {len(body)}\r\n{fields}\r\n"
        return await self._pool.send(head.encode("latin-1") + body)

    async def close(self) -> None:
        await self._pool.close()

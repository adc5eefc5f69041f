"""HTTP for the lean Personalize client: aiohttp's keep-alive pool, with the limits Personalize needs.

aiohttp (its connection pool and llhttp parser, maintained and fuzzed upstream) replaces the
hand-written HTTP/1.1 pool the lean client used to carry. What stays ours is small:

- request header names and values are checked for CR, LF and NUL before anything is sent
  (`check_header_values`), each value on its own, so a session token ``tok\\r\\nX: 1`` can
  never add a header line;
- response heads are bounded (`MAX_RESPONSE_HEADERS` lines of at most `MAX_HEADER_LINE`
  bytes) and bodies too (`MAX_RESPONSE_BYTES`; a Personalize answer is a few hundred bytes);
- a connection that carries bytes nobody asked for is never reused (`StrictConnector`): aiohttp
  checks for them when a connection goes back to the pool, but not when an idle one is taken
  out, so a response that arrives while the connection is idle would be read as the next
  call's answer (measured: a 403 came back as the 200 sent earlier);
- a request whose keep-alive connection the server closed under it is sent once more at once;
- every failure surfaces as an `OSError` (`ConnectionError` or `TimeoutError`), which the
  sender classifies as a network error: retried with backoff until the delivery deadline.
"""

from __future__ import annotations

import asyncio
import select
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

#: A PutEvents answer is a few hundred bytes: anything near this is not Personalize.
MAX_RESPONSE_BYTES = 1 << 20
MAX_RESPONSE_HEADERS = 64
MAX_HEADER_LINE = 8190

_FORBIDDEN = ("\r", "\n", "\0")


@dataclass(frozen=True, slots=True)
class Response:
    """A complete response; header names are lower-case (error answers only: success needs none)."""

    status: int
    headers: dict[str, str]
    body: bytes


class InvalidHeaderValueError(ValueError):
    """A request header name or value holds CR, LF or NUL (e.g. a corrupted session token)."""


def check_header_values(headers: Mapping[str, str]) -> None:
    """Refuse any header whose name or value could end the line it is written on."""
    for name, value in headers.items():
        if any(c in name or c in value for c in _FORBIDDEN):
            raise InvalidHeaderValueError(f"request header {name!r} contains CR, LF or NUL; refusing to send it")


class StrictConnector(aiohttp.TCPConnector):
    """A TCPConnector that never hands out an idle connection holding unrequested bytes.

    Bytes can wait in two places: parsed into aiohttp's queue (`should_close` then says so)
    or still unread in the socket, since an idle connection may not be reading. Both are
    checked when the pool hands a connection out; either way it is closed, not reused.
    """

    async def _get(self, key: Any, traces: Any) -> Any:
        while True:
            connection = await super()._get(key, traces)
            protocol = getattr(connection, "protocol", None)
            if connection is None or protocol is None:
                return connection
            if not protocol.should_close and not _readable(protocol.transport):
                return connection
            connection.close()  # released with should_close: the transport is closed, not pooled


def _readable(transport: Any) -> bool:
    """Whether the socket under an idle connection has bytes (or an EOF) waiting: never legitimate."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False
    try:
        ready, _, _ = select.select([sock.fileno()], [], [], 0)
    except (OSError, ValueError):  # already closed
        return True
    return bool(ready)


class AiohttpTransport:
    """POSTs of pre-built, pre-signed requests to one origin over aiohttp's connection pool."""

    def __init__(
        self,
        base_url: str,
        *,
        ssl_context: ssl.SSLContext | None,
        max_connections: int,
        connect_timeout_s: float,
        response_timeout_s: float,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._base = base_url.rstrip("/")
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else False
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(total=response_timeout_s, sock_connect=connect_timeout_s)
        self._connect_timeout_s = connect_timeout_s
        self._response_timeout_s = response_timeout_s
        self._max_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = StrictConnector(limit=self._max_connections, limit_per_host=self._max_connections,
                                    ssl=self._ssl, ttl_dns_cache=60)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            max_line_size=MAX_HEADER_LINE, max_field_size=MAX_HEADER_LINE, max_headers=MAX_RESPONSE_HEADERS,
        )

    async def post(self, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Send one POST and return its complete response (see the module docstring for the rules)."""
        session = self._session
        if session is None or session.closed:
            raise ConnectionAbortedError("the HTTP transport is not started or already closed")
        check_header_values(headers)
        try:
            try:
                return await self._post(session, path, headers, body)
            except aiohttp.ServerDisconnectedError:
                # A keep-alive connection the server (or a load balancer's idle timeout) closed while
                # we wrote: sent once more on a new connection. Harmless even had it been processed:
                # event IDs make PutEvents idempotent, and PutItems/PutUsers upserts are.
                return await self._post(session, path, headers, body)
        except TimeoutError:
            raise TimeoutError(f"no complete response within {self._response_timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from None

    async def _post(self, session: aiohttp.ClientSession, path: str, headers: Mapping[str, str],
                    body: bytes) -> Response:
        async with session.post(self._base + path, data=body, headers=headers, allow_redirects=False) as response:
            payload = await self._read(response)
            status = response.status
            # Only error answers are read for their headers (x-amzn-ErrorType, x-amzn-RequestId).
            lowered = {} if status < 300 else {k.lower(): v for k, v in response.headers.items()}
            return Response(status, lowered, payload)

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        length = response.content_length
        if length is not None:  # what Personalize sends: checked before a byte of the body is read
            if length > self._max_bytes:
                response.close()
                raise ConnectionError(f"response body of {length} bytes exceeds {self._max_bytes}")
            return await response.read()
        chunks: list[bytes] = []
        size = 0
        while chunk := await response.content.readany():
            size += len(chunk)
            if size > self._max_bytes:
                response.close()
                raise ConnectionError(f"response body exceeds {self._max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await asyncio.sleep(0)  # let the transports run their close callbacks

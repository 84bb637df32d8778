"""A lean HTTP/1.1 client for one upstream origin: keep-alive connection pool, httptools parsing.

The frontend calls one predictor many thousand times a second with tiny bodies; a general client
(aiohttp: ~0.4 ms CPU per call here, httpx ~2 ms) costs more than the rest of ``/api/predict``.
This one does only what that needs: one request per connection at a time, idle connections
reused last-in first-out, ``Content-Length``, chunked and read-until-close bodies (httptools),
a connect timeout and a total timeout, and ``http``/``https`` origins.

Errors: ``UpstreamTimeout`` (a ``TimeoutError``) and ``UpstreamUnreachable`` (a
``ConnectionError``); callers turn them into messages. A request whose reused keep-alive
connection was closed by the server before any answer is retried once on a new connection.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

MAX_RESPONSE_BYTES = 16 * 1024 * 1024


class UpstreamTimeout(TimeoutError):
    """No (complete) answer within the time limit."""


class UpstreamUnreachable(ConnectionError):
    """Cannot connect, or the connection broke before a complete answer."""


@dataclass(frozen=True)
class Response:
    """A complete answer: status, the one header asked for (or None), the body."""

    status: int
    header: str | None
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; ``exchange`` sends a request and resolves with its response."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wanted_header: bytes) -> None:
        self._loop = loop
        self._wanted = wanted_header
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._header: str | None = None
        self._got_bytes = False
        self._headers_done = False
        self._framed = False
        self._until_close = False
        self._keep_alive = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for (e.g. a 408 on an idle connection): not reusable
            return
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamUnreachable(f"unparseable HTTP response ({exc})"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._until_close and self._headers_done:
                self._finish()  # a body delimited by the end of the connection
            else:
                self._fail(UpstreamUnreachable("the connection closed before a complete answer"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == self._wanted:
            self._header = value.decode("latin-1")
        elif name == b"content-length" or name == b"transfer-encoding":
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._keep_alive = self._parser.should_keep_alive()
        # No Content-Length and not chunked: the body ends when the server closes.
        self._until_close = not self._keep_alive and not self._framed

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_RESPONSE_BYTES:
            self._fail(UpstreamUnreachable(f"the answer is larger than {MAX_RESPONSE_BYTES} bytes"))
            self.close()
            return
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if not self._keep_alive:
            self.close()
        self._finish()

    # internals
    def _finish(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            chunks = self._chunks
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            waiter.set_result(Response(self._parser.get_status_code(), self._header, body))

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def exchange(self, request: bytes) -> asyncio.Future[Response]:
        self._waiter = waiter = self._loop.create_future()
        self._chunks = []
        self._size = 0
        self._header = None
        self._got_bytes = False
        self._headers_done = False
        self._framed = False
        self._until_close = False
        self._keep_alive = True
        assert self.transport is not None
        self.transport.write(request)
        return waiter

    @property
    def answered_nothing(self) -> bool:
        return not self._got_bytes

    @property
    def reusable(self) -> bool:
        return not self.closed and self._keep_alive and self._waiter is not None and self._waiter.done()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Keep-alive connections to the origin of ``base_url``; ``request`` sends one call on one of them."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float,
        connect_timeout_s: float,
        wanted_header: str = "",
        max_idle: int = 200,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r} is not an http:// or https:// URL")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if parts.scheme == "https" else None
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_idle = max_idle
        self._wanted = wanted_header.lower().encode("latin-1")
        default_port = 443 if parts.scheme == "https" else 80
        host_header = parts.hostname if self.port == default_port else f"{parts.hostname}:{self.port}"
        if ":" in parts.hostname and not parts.hostname.startswith("["):
            host_header = f"[{parts.hostname}]" + ("" if self.port == default_port else f":{self.port}")
        headers = {"host": host_header, **(extra_headers or {})}
        self._headers = "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")
        self._idle: list[_Connection] = []
        self._closed = False

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(loop, self._wanted), self.host, self.port, ssl=self._ssl
                )
        except TimeoutError:
            raise UpstreamTimeout(f"no connection within {self.connect_timeout_s:g} s") from None
        except OSError as exc:
            raise UpstreamUnreachable(f"{type(exc).__name__}: {exc}") from None
        return protocol

    def _encode(self, method: str, path: str, body: bytes | None) -> bytes:
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode("latin-1") + self._headers
        if body is None:
            return head + b"\r\n"
        return b"%scontent-length: %d\r\n\r\n%s" % (head, len(body), body)

    async def request(self, method: str, path: str, body: bytes | None = None) -> Response:
        """Send ``method path`` (path below the base URL) and return the complete answer."""
        if self._closed:
            raise UpstreamUnreachable("the client is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        payload = self._encode(method, path, body)
        for attempt in (1, 2):
            conn = None
            while self._idle:
                candidate = self._idle.pop()
                if not candidate.closed:
                    conn = candidate
                    break
            if conn is None:
                conn = await self._connect()
            waiter = conn.exchange(payload)
            timer = loop.call_at(deadline, _expire, waiter)
            try:
                response = await waiter
            except UpstreamUnreachable:
                conn.close()
                if attempt == 1 and conn.reused and conn.answered_nothing:
                    continue  # the server closed an idle keep-alive connection as we sent: retry once
                raise
            except TimeoutError:
                conn.close()
                raise UpstreamTimeout(f"no answer within {self.timeout_s:g} s") from None
            except BaseException:
                conn.close()  # cancelled mid-request: the connection's state is unknown
                raise
            finally:
                timer.cancel()
            if conn.reusable and not self._closed and len(self._idle) < self.max_idle:
                conn.reused = True
                self._idle.append(conn)
            else:
                conn.close()
            return response
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close every idle connection; requests after this fail."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()


def _expire(waiter: asyncio.Future[Response]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())

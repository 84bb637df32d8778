"""frontend.upstream against real HTTP servers on loopback: keep-alive reuse, body framings, the
server closing an idle connection, timeouts and refused connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from frontend.upstream import UpstreamPool, UpstreamTimeout, UpstreamUnreachable
from tests.frontend.fake_predictor import unused_url

Answer = Callable[[bytes], bytes | None]  # request head+body -> raw response (None: close without answering)


@asynccontextmanager
async def raw_server(answer: Answer, close_after: bool = False) -> AsyncIterator[tuple[str, list[int]]]:
    """An HTTP/1.1 server on a free port that answers each request with ``answer(request)``.

    Yields the base URL and a list with one entry per accepted connection.
    """
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + await reader.readexactly(length)
                response = answer(request)
                if response is None:
                    break
                writer.write(response)
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()


def echo_path(request: bytes) -> bytes:
    path = request.split(b" ", 2)[1]
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nx-kfchain-model-version: v7\r\n\r\n%s" % (
        len(path),
        path,
    )


def pool(url: str, timeout_s: float = 2.0) -> UpstreamPool:
    return UpstreamPool(
        url, timeout_s=timeout_s, connect_timeout_s=1.0, wanted_header="x-kfchain-model-version"
    )


async def test_keeps_one_connection_alive_across_requests_and_reads_the_wanted_header() -> None:
    async with raw_server(echo_path) as (url, connections):
        client = pool(url + "/prefix")
        answers = [await client.request("POST", f"/v1/{i}", b"{}") for i in range(5)]
        await client.close()
    assert [a.body for a in answers] == [f"/prefix/v1/{i}".encode() for i in range(5)]
    assert {a.status for a in answers} == {200}
    assert answers[0].header == "v7"
    assert len(connections) == 1


async def test_concurrent_requests_each_get_their_own_answer() -> None:
    async with raw_server(echo_path) as (url, connections):
        client = pool(url)
        answers = await asyncio.gather(*(client.request("GET", f"/{i}") for i in range(20)))
        again = await asyncio.gather(*(client.request("GET", f"/{i}") for i in range(20)))
        await client.close()
    assert [a.body for a in answers] == [f"/{i}".encode() for i in range(20)]
    assert [a.body for a in again] == [a.body for a in answers]
    assert len(connections) <= 20  # the second round reused the first round's connections


async def test_chunked_and_close_delimited_bodies_are_read_whole() -> None:
    chunked = b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    async with raw_server(lambda _: chunked) as (url, connections):
        client = pool(url)
        first = await client.request("POST", "/x", b"1")
        second = await client.request("POST", "/x", b"1")
        await client.close()
    assert (first.status, first.body, first.header) == (400, b"hello world", None)
    assert second.body == b"hello world" and len(connections) == 1

    until_close = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it"
    async with raw_server(lambda _: until_close, close_after=True) as (url, connections):
        client = pool(url)
        answers = [await client.request("GET", "/") for _ in range(3)]
        await client.close()
    assert [a.body for a in answers] == [b"all of it"] * 3
    assert len(connections) == 3  # "connection: close" is honoured, not reused


async def test_a_keep_alive_connection_the_server_closed_is_replaced_transparently() -> None:
    async with raw_server(echo_path, close_after=True) as (url, connections):
        # The server answers with keep-alive but closes right after: the pool must not fail the next call.
        client = pool(url)
        answers = []
        for _ in range(3):
            answers.append(await client.request("GET", "/again"))
            await asyncio.sleep(0.05)
        await client.close()
    assert [a.body for a in answers] == [b"/again"] * 3
    assert len(connections) == 3


async def test_a_server_that_hangs_up_without_answering_is_unreachable() -> None:
    async with raw_server(lambda _: None) as (url, _):
        client = pool(url)
        with pytest.raises(UpstreamUnreachable, match="closed before a complete answer"):
            await client.request("GET", "/")
        await client.close()


async def test_a_body_cut_short_of_its_content_length_is_not_taken_as_complete() -> None:
    truncated = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\nonly part"
    async with raw_server(lambda _: truncated, close_after=True) as (url, _):
        client = pool(url)
        with pytest.raises(UpstreamUnreachable, match="closed before a complete answer"):
            await client.request("GET", "/")
        await client.close()


async def test_slow_server_times_out_and_the_pool_still_works_afterwards() -> None:
    slow = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if not slow.is_set():
            slow.set()
            await asyncio.sleep(2)
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    client = pool(url, timeout_s=0.2)
    try:
        with pytest.raises(UpstreamTimeout, match="0.2 s"):
            await client.request("GET", "/")
        answer = await client.request("GET", "/")
    finally:
        await client.close()
        server.close()
    assert (answer.status, answer.body) == (204, b"")


async def test_nothing_listening_is_unreachable() -> None:
    client = pool(unused_url())
    with pytest.raises(UpstreamUnreachable, match="ConnectionRefusedError"):
        await client.request("GET", "/")


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="ftp://x"):
        UpstreamPool("ftp://x", timeout_s=1, connect_timeout_s=1)

"""frontend.http_protocol on a real uvicorn server: whole responses on keep-alive connections,
streams still delivered piece by piece while the app is still producing them."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from frontend.http_protocol import CoalescingHttpToolsProtocol

release_stream = threading.Event()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    if scope["path"] == "/stream":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        for _ in range(200):  # the client must see "first" while we still wait
            if release_stream.is_set():
                break
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"second\n", "more_body": False})
        return
    body = scope["path"].encode() * 1000
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        http=CoalescingHttpToolsProtocol,
        loop="uvloop",
        lifespan="off",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_responses_arrive_whole_on_one_keep_alive_connection(served: str) -> None:
    with httpx.Client(base_url=served) as client:
        answers = [client.get(f"/r{i}") for i in range(20)]
    assert [a.text for a in answers] == [f"/r{i}" * 1000 for i in range(20)]
    assert {a.headers["content-length"] for a in answers} == {"3000", "4000"}


def test_a_stream_is_delivered_while_the_app_is_still_writing(served: str) -> None:
    release_stream.clear()
    with httpx.Client(base_url=served, timeout=5) as client, client.stream("GET", "/stream") as response:
        lines = response.iter_lines()
        started = time.monotonic()
        first = next(lines)
        waited = time.monotonic() - started
        release_stream.set()
        rest = list(lines)
    assert first == "first"
    assert waited < 1.5  # not held back until the end of the stream (the app waits up to 2 s)
    assert rest == ["second"]

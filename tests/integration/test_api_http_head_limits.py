"""The server's HTTP protocol bounds request heads in size and time (``BoundedHttpToolsProtocol``).

uvicorn runs in the test's event loop with the protocol and short limits, in front of a
small ASGI app; clients are plain sockets, so each test controls exactly what is sent.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

import pytest
import uvicorn

from tests.support.server import free_port
from tokenforge.api.http_server import BoundedHttpToolsProtocol

pytestmark = pytest.mark.integration

HEAD_TIMEOUT_S = 0.4


class ShortLimits(BoundedHttpToolsProtocol):
    max_head_bytes = 4096
    head_timeout_s = HEAD_TIMEOUT_S


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    slow = scope["path"] == "/slow"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for i in range(5 if slow else 1):
        if slow:
            await asyncio.sleep(HEAD_TIMEOUT_S / 2)  # the whole answer takes longer than a head may
        await send({"type": "http.response.body", "body": b"part%d\n" % i, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


@asynccontextmanager
async def running_server():
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=ShortLimits,
        loop="asyncio",
        lifespan="off",
        log_level="warning",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to await
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if line)}
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
    else:  # chunked
        body = b""
        while True:
            size = int((await reader.readline()).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    return int(lines[0].split()[1]), headers, body


async def test_a_connection_that_sends_nothing_gets_408_and_is_closed():
    async with running_server() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        status, headers, body = await read_response(reader)
        assert status == 408 and headers["content-type"] == "application/problem+json"
        assert json.loads(body)["type"] == "/problems/request-timeout"
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed
        writer.close()


async def test_a_head_trickled_slower_than_the_timeout_gets_408():
    async with running_server() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        status, _, _ = await read_response(reader)  # the header block never ends
        assert status == 408
        writer.close()


@pytest.mark.parametrize("pieces", [1, 8])
async def test_a_head_over_the_limit_gets_431(pieces):
    async with running_server() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"p" * 8000 + b"\r\n\r\n"
        step = len(head) // pieces + 1
        for at in range(0, len(head), step):
            writer.write(head[at : at + step])
            await writer.drain()
        status, _, body = await read_response(reader)
        assert status == 431 and json.loads(body)["type"] == "/problems/request-header-fields-too-large"
        writer.close()


async def test_keep_alive_and_slow_answers_are_not_cut_by_the_head_timer():
    async with running_server() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = await read_response(reader)
        assert status == 200 and body.count(b"part") == 5
        # idle on a kept-alive connection for longer than a head may take, then ask again
        idle = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(HEAD_TIMEOUT_S * 2, idle.set_result, None)
        await idle
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = await read_response(reader)
        assert status == 200 and body == b"part0\n"
        writer.close()

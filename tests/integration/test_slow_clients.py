"""Slow clients cannot hold connections of a real ``tokenforge serve`` process open: a head
that never ends is cut off after ``header_timeout_s``, a declared body that never comes
after ``body_timeout_s`` (raw sockets, timed from the moment the client stops sending)."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.support.server import serve, stop

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.5
#: Scheduling slack on a busy 2-core machine.
MARGIN_S = 1.5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"TOKENFORGE_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S), "TOKENFORGE_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S)}
    proc, base = serve(tmp_path_factory.mktemp("slow") / "data", "solana", env=env)
    try:
        yield urlsplit(base)
    finally:
        stop(proc)


def _connect(server) -> socket.socket:
    sock = socket.create_connection((server.hostname, server.port), timeout=10)
    sock.settimeout(BODY_TIMEOUT_S + HEADER_TIMEOUT_S + 10)
    return sock


def _until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed
    (monotonic); fails if it does not close within the socket's timeout."""
    received = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return received, time.monotonic()
        received += chunk


def _status_and_problem(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_a_client_that_sends_nothing_is_disconnected_after_the_header_timeout(server):
    with _connect(server) as sock:
        opened = time.monotonic()
        raw, closed = _until_closed(sock)
    assert HEADER_TIMEOUT_S * 0.9 <= closed - opened <= HEADER_TIMEOUT_S + MARGIN_S, closed - opened
    status, problem = _status_and_problem(raw)
    assert status == 408 and problem["type"] == "/problems/request-timeout"


def test_a_head_that_never_ends_is_cut_off_after_the_header_timeout(server):
    with _connect(server) as sock:
        sock.sendall(b"POST /v1/tokens HTTP/1.1\r\nHost: tokenforge\r\nContent-Type: application/json\r\n")
        sent = time.monotonic()
        raw, closed = _until_closed(sock)
    assert closed - sent <= HEADER_TIMEOUT_S + MARGIN_S, closed - sent
    assert _status_and_problem(raw)[0] == 408


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/tokens"), ("GET", "/v1/tokens"), ("POST", "/v1/no-such-route")],
)
def test_a_declared_body_that_never_arrives_gets_408_after_the_body_timeout(server, method, path):
    with _connect(server) as sock:
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: tokenforge\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n{".encode()
        )
        sent = time.monotonic()
        raw, closed = _until_closed(sock)
    assert BODY_TIMEOUT_S * 0.9 <= closed - sent <= BODY_TIMEOUT_S + MARGIN_S, closed - sent
    status, problem = _status_and_problem(raw)
    assert status == 408 and problem["type"] == "/problems/request-timeout"
    assert "body" in problem["detail"]


def test_a_body_trickled_byte_by_byte_is_cut_off_at_the_body_timeout(server):
    with _connect(server) as sock:
        sock.sendall(b"POST /v1/tokens HTTP/1.1\r\nHost: tokenforge\r\nContent-Length: 1000\r\n\r\n")
        started = time.monotonic()
        sock.settimeout(0.25)
        raw = b""
        while time.monotonic() - started < BODY_TIMEOUT_S + MARGIN_S + 1:
            try:
                sock.sendall(b" ")
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if not chunk:
                break
            raw += chunk
        closed = time.monotonic()
    assert closed - started <= BODY_TIMEOUT_S + MARGIN_S, closed - started
    assert raw.startswith(b"HTTP/1.1 408")


def test_the_server_still_answers_after_the_slow_clients(server):
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: tokenforge\r\nConnection: close\r\n\r\n")
        raw, _ = _until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 200")

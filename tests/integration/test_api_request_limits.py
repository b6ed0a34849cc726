"""No single request can crash ``tokenforge serve`` or make it hold what the client sends.

These tests run the real server process (API, relay and worker in one interpreter, as an
operator runs it) and send it hostile requests: JSON nested hundreds of thousands deep
(which once killed the process with SIGSEGV: py_ecc raises the recursion limit to
100,000 and the JSON parser overran the C stack), a 100 MB body, a 100 MB header, and a
body or head that never finishes. Each must get a problem+json answer, the process must
stay alive and keep serving, and its memory must not grow with what was sent.
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator

import httpx
import pytest

from tests.support.bodies import launch_body
from tests.support.server import operator_headers, serve, stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROBLEM_JSON = "application/problem+json"
MIB = 1024 * 1024
BODY_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[subprocess.Popen, str]]:
    proc, base = serve(
        tmp_path_factory.mktemp("limits"), "ethereum", env={"TOKENFORGE_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S)}
    )
    try:
        yield proc, base
    finally:
        stop(proc)


def chain_body(**over) -> dict:
    return launch_body(**over)  # the server's one chain: ethereum


def assert_alive(proc: subprocess.Popen, base: str) -> None:
    assert proc.poll() is None, f"the server died (exit status {proc.returncode})"
    assert httpx.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}


def assert_problem(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text[:500]
    assert resp.headers["content-type"].split(";")[0] == PROBLEM_JSON
    problem = resp.json()
    assert problem["status"] == status and problem["type"].startswith("/problems/")
    return problem


def chunks(data: bytes, size: int = 16 * 1024) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


def vm_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


class PeakRss:
    """The highest resident set size of ``pid`` while the block runs (KiB): the kernel's
    high-water mark reset at entry where allowed, and samples every few milliseconds."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before_kib = 0
        self.peak_kib = 0
        self._stop = threading.Event()
        self._reset = False

    def __enter__(self) -> PeakRss:
        self.before_kib = vm_kib(self.pid, "VmRSS")
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as clear_refs:
                clear_refs.write("5")  # reset VmHWM to the current RSS
            self._reset = True
        except OSError:
            pass
        self.peak_kib = self.before_kib
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak_kib = max(self.peak_kib, vm_kib(self.pid, "VmRSS"))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, vm_kib(self.pid, "VmRSS"))
        if self._reset:
            self.peak_kib = max(self.peak_kib, vm_kib(self.pid, "VmHWM"))

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.before_kib) / 1024


class _Answered(Exception):
    pass


def raw_exchange(base: str, head: bytes, body_parts: Iterable[bytes] = (), timeout_s: float = 30.0) -> bytes:
    """Send ``head`` and then ``body_parts`` over a plain socket, stopping as soon as the
    server answers or closes; returns everything it answered with."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        try:
            for part in body_parts:
                view = memoryview(part)
                while view:
                    readable, writable, _ = select.select([sock], [sock], [], timeout_s)
                    if readable:
                        raise _Answered
                    assert writable, "the server neither reads the request nor answers it"
                    view = view[sock.send(view) :]
        except (_Answered, BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        while True:
            readable, _, _ = select.select([sock], [], [], timeout_s)
            assert readable, f"no answer within {timeout_s} s"
            try:
                more = sock.recv(65536)
            except ConnectionResetError:
                break
            if not more:
                break
            answer += more
    return answer


def parse_answer(answer: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, json.loads(body[: int(headers["content-length"])])


# --- deep nesting ------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [70_000, 1_000_000])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_deeply_nested_json_is_refused_and_the_server_lives(server, depth, framing):
    proc, base = server
    body = b"[" * depth
    content = body if framing == "content-length" else chunks(body)
    resp = httpx.post(
        f"{base}/v1/tokens",
        content=content,
        headers={"content-type": "application/json", **operator_headers(base)},
        timeout=60,
    )
    if framing == "content-length":  # announced larger than the limit: refused unread
        assert assert_problem(resp, 413)["type"] == "/problems/body-too-large"
    else:  # streamed: refused at the first chunk, for its depth
        problem = assert_problem(resp, 422)
        assert problem["type"] == "/problems/body-too-deep"
        assert [e["field"] for e in problem["errors"]] == ["body"]
    assert_alive(proc, base)


@pytest.mark.parametrize(
    "body", [b"[" * 20_000, b'{"name": ' * 5_000 + b"1" + b"}" * 5_000, b'{"a": [{"b": [' * 9 + b"]}]" * 9 + b"}"]
)
def test_json_deeper_than_32_levels_within_the_size_limit_is_a_422_naming_the_body(server, body):
    proc, base = server
    problem = assert_problem(
        httpx.post(
            f"{base}/v1/tokens",
            content=body,
            timeout=60,
            headers={"content-type": "application/json", **operator_headers(base)},
        ),
        422,
    )
    assert [e["field"] for e in problem["errors"]] == ["body"]
    assert "32" in problem["detail"]
    assert_alive(proc, base)


def test_brackets_inside_strings_do_not_count_and_a_launch_still_works(server):
    proc, base = server
    resp = httpx.post(
        f"{base}/v1/tokens",
        json=chain_body(description="[{" * 400 + '\\"[' * 50),
        headers=operator_headers(base),
        timeout=60,
    )
    assert resp.status_code == 202, resp.text
    assert_alive(proc, base)


# --- body size -----------------------------------------------------------------------------


def test_a_streamed_100_mb_body_is_refused_with_413_without_growing_the_server(server):
    proc, base = server
    payload = b'{"description": "' + b"x" * (100 * MIB)
    httpx.get(f"{base}/v1/tokens", timeout=10)  # warm the code paths before measuring
    with PeakRss(proc.pid) as rss:
        resp = httpx.post(
            f"{base}/v1/tokens",
            content=chunks(payload, 256 * 1024),
            timeout=60,
            headers={"content-type": "application/json", **operator_headers(base)},
        )
    problem = assert_problem(resp, 413)
    assert problem["type"] == "/problems/body-too-large"
    assert "65536" in problem["detail"]
    assert rss.growth_mib < 8, f"the server grew by {rss.growth_mib:.1f} MiB while refusing the body"
    assert_alive(proc, base)


def test_a_body_announced_larger_than_the_limit_is_refused_before_it_is_sent(server):
    proc, base = server
    head = (
        b"POST /v1/tokens HTTP/1.1\r\nHost: tokenforge.test\r\ncontent-type: application/json\r\n"
        b"content-length: 104857600\r\n\r\n"
    )
    status, headers, problem = parse_answer(raw_exchange(base, head))
    assert status == 413 and headers["content-type"] == PROBLEM_JSON
    assert headers["connection"] == "close"
    assert problem["type"] == "/problems/body-too-large"
    assert_alive(proc, base)


def test_a_body_of_exactly_the_limit_is_read(server):
    _, base = server
    body = json.dumps(chain_body()).encode()
    body += b" " * (64 * 1024 - len(body))
    resp = httpx.post(
        f"{base}/v1/tokens",
        content=body,
        headers={"content-type": "application/json", **operator_headers(base)},
        timeout=60,
    )
    assert resp.status_code == 202, resp.text
    assert_problem(
        httpx.post(
            f"{base}/v1/tokens",
            content=body + b" ",
            timeout=60,
            headers={"content-type": "application/json", **operator_headers(base)},
        ),
        413,
    )


# --- slow and oversized requests ---------------------------------------------------------


def test_a_body_that_stops_arriving_is_refused_with_408(server):
    proc, base = server
    head = (
        b"POST /v1/tokens HTTP/1.1\r\nHost: tokenforge.test\r\ncontent-type: application/json\r\n"
        b'content-length: 100\r\n\r\n{"name": '
    )
    started = time.monotonic()
    status, _, problem = parse_answer(raw_exchange(base, head, timeout_s=BODY_TIMEOUT_S + 20))
    assert status == 408 and problem["type"] == "/problems/request-timeout"
    assert time.monotonic() - started >= BODY_TIMEOUT_S * 0.9
    assert_alive(proc, base)


def test_a_100_mb_header_is_refused_with_431_without_growing_the_server(server):
    proc, base = server
    head = b"GET /healthz HTTP/1.1\r\nHost: tokenforge.test\r\nX-Padding: "
    with PeakRss(proc.pid) as rss:
        answer = raw_exchange(base, head, (b"a" * (256 * 1024) for _ in range(400)))
    status, headers, problem = parse_answer(answer)
    assert status == 431 and headers["content-type"] == PROBLEM_JSON
    assert problem["type"] == "/problems/request-header-fields-too-large"
    assert rss.growth_mib < 8, f"the server grew by {rss.growth_mib:.1f} MiB while refusing the header"
    assert_alive(proc, base)


def test_a_100_kb_url_is_refused_with_431(server):
    proc, base = server
    status, _, _ = parse_answer(raw_exchange(base, b"GET /v1/tokens?" + b"a=1&" * 25_000 + b" HTTP/1.1\r\n\r\n"))
    assert status == 431
    assert_alive(proc, base)


def test_ordinary_headers_and_keep_alive_still_work(server):
    _, base = server
    with httpx.Client(base_url=base, timeout=10, headers={"X-Padding": "p" * 8000, **operator_headers(base)}) as client:
        for _ in range(3):  # several requests on one connection
            assert client.get("/healthz").status_code == 200
            assert client.post("/v1/tokens", json=chain_body()).status_code == 202


# --- the recursion limit -----------------------------------------------------------------


def test_the_recursion_limit_stays_bounded_after_the_chains_open(tmp_path):
    """Whatever the chain libraries set at import, a server process keeps a recursion
    limit at which deep recursion raises RecursionError instead of crashing: the app is
    imported, the embedded EVM and Solana chains are opened, and then a JSON text
    1,000,000 levels deep is parsed in the same interpreter."""
    script = f"""
import asyncio, json, sys
from tokenforge.api.app import create_app
from tokenforge.config import Settings

async def main():
    chains = {{"ethereum": "embedded", "solana": "embedded"}}
    app = create_app(Settings(data_dir={str(tmp_path / "data")!r}, chains=chains))
    async with app.router.lifespan_context(app):
        assert "eth" in sys.modules and "py_ecc" in sys.modules, "the embedded EVM was not opened"
        print(sys.getrecursionlimit(), flush=True)
        try:
            json.loads("[" * 1_000_000)
        except RecursionError:
            print("RecursionError", flush=True)

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    limit, outcome = done.stdout.split()[:2]
    assert 1000 <= int(limit) <= 12_288
    assert outcome == "RecursionError"

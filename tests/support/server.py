"""Run ``tokenforge serve`` as a real process for tests, and follow its jobs over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx

from tests.support.auth import settings_key
from tokenforge.config import Settings

_ISSUED_PORTS: set[int] = set()
#: The operator key of each server :func:`serve` started, by base URL.
_KEYS: dict[str, str] = {}


def operator_headers(base: str) -> dict[str, str]:
    """The ``Authorization`` header of the operator key issued for the server at ``base``."""
    return {"Authorization": f"Bearer {_KEYS[base]}"}


def free_port() -> int:
    """A loopback port nothing listens on now, never one this process handed out before
    (the kernel may offer a just-released port again: two children must not get the same)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ISSUED_PORTS:
            _ISSUED_PORTS.add(port)
            return port


def serve(
    data_dir, chain: str, crash_point: str | None = None, *, args: tuple[str, ...] = (), env: dict | None = None
) -> tuple[subprocess.Popen, str]:
    """Start the server with only ``chain`` enabled; returns it and its base URL once ready."""
    port = free_port()
    full_env = {
        **os.environ,
        "TOKENFORGE_DATA_DIR": str(data_dir),
        "TOKENFORGE_CHAINS": json.dumps({chain: "embedded"}),
        **(env or {}),
    }
    full_env.pop("TOKENFORGE_FAULT_CRASH_POINT", None)
    if crash_point:
        full_env["TOKENFORGE_FAULT_CRASH_POINT"] = crash_point
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenforge.cli.main", "serve", "--port", str(port), *args],
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                settings = Settings(data_dir=data_dir, database_url=full_env.get("TOKENFORGE_DATABASE_URL"))
                _KEYS[base] = settings_key(settings)
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not become ready")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def follow_until_final(base: str, job_id: str) -> tuple[dict, list[dict]]:
    """The job's whole event history (from the start) until it is final, and the job."""
    events = []
    with httpx.stream("GET", f"{base}/v1/jobs/{job_id}/events", timeout=120) as resp:
        for line in resp.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if events[-1]["final"]:
                    break
    return httpx.get(f"{base}/v1/jobs/{job_id}").json(), events


def crash_and_resume(
    data_dir, chain: str, crash_point: str, body: dict, *, env: dict | None = None, before=None, between=None
) -> tuple[dict, dict, list[dict], dict]:
    """Launch on a server armed to exit abruptly at ``crash_point`` (``before()`` runs once it
    is ready, before the launch), run ``between()`` while it is down, start it again on the
    same data and follow the job until it is final.

    Returns ``(accepted, job, events, token)``. Asserts the crash happened and that the
    successor signed nothing new: exactly one "signed" event, whose transaction is the
    token's.
    """
    proc, base = serve(data_dir, chain, crash_point, env=env)
    try:
        if before is not None:
            before()
        accepted = httpx.post(f"{base}/v1/tokens", json=body, headers=operator_headers(base), timeout=30).json()
        assert proc.wait(timeout=60) == 86, "the armed fault must kill the process mid-launch"
    finally:
        stop(proc)
    if between is not None:
        between()
    proc, base = serve(data_dir, chain, None, env=env)
    try:
        job, events = follow_until_final(base, accepted["job"]["id"])
        token = httpx.get(f"{base}/v1/tokens/{accepted['token']['id']}").json()
    finally:
        stop(proc)
    assert job["status"] == "confirmed", job
    signed = [e for e in events if e["status"] == "submitting" and "signed" in e["message"]]
    assert len(signed) == 1, "the successor must re-send the recorded transaction, not sign a new one"
    assert token["tx_id"] == signed[0]["data"]["tx_id"]
    return accepted, job, events, token

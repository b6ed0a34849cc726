"""A receiver can check a delivery's signature with the documented recipe."""

from __future__ import annotations

import hashlib
import hmac
import time

from tokenforge.webhooks.signing import SECRET_PREFIX, new_secret, signature_header, verify


def receiver_accepts(secret: str, header: str, raw_body: bytes) -> bool:
    """The recipe of ``tokenforge.webhooks.signing``'s docstring, written out by a receiver."""
    fields = dict(p.split("=", 1) for p in header.split(","))
    t, v1 = fields["t"], fields["v1"]
    expected = hmac.new(secret.encode(), f"{t}.".encode() + raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, v1) and abs(time.time() - int(t)) <= 300


def test_secret_is_32_random_bytes_behind_the_prefix():
    a, b = new_secret(), new_secret()
    assert a.startswith(SECRET_PREFIX) and len(bytes.fromhex(a.removeprefix(SECRET_PREFIX))) == 32
    assert a != b


def test_a_receiver_verifies_the_header_and_a_tampered_body_fails():
    secret = new_secret()
    body = b'{"id":"evt_1","type":"job.confirmed"}'
    header = signature_header(secret, body)
    assert header.startswith("t=") and ",v1=" in header
    assert receiver_accepts(secret, header, body) and verify(secret, header, body)
    tampered = body.replace(b"confirmed", b"failed")
    assert not receiver_accepts(secret, header, tampered) and not verify(secret, header, tampered)
    assert not verify(new_secret(), header, body)


def test_an_old_signature_or_a_changed_timestamp_is_refused():
    secret = new_secret()
    body = b"{}"
    old = signature_header(secret, body, now_s=time.time() - 3600)
    assert not verify(secret, old, body)
    assert verify(secret, old, body, tolerance_s=7200)
    v1 = old.split(",")[1]
    assert not verify(secret, f"t={int(time.time())},{v1}", body)
    assert not verify(secret, "garbage", body)
